// Pieces of the post-training runs (post_run.h) that tests check directly. Includes torch.
#pragma once
#include <torch/types.h>

#include <memory>
#include <string>

#include "model/weights.h"
#include "train/model.h"

namespace dsv4::train {

// A trainer checkpoint (.safetensors file, or a run directory holding checkpoint.safetensors)
// or an official-layout model directory (config.json + safetensors).
TrainModel load_any_model(const std::string& path);

// Weight sync trainer -> engine: writes the model into `dir` (a trainer checkpoint, then the
// release layout, replacing an earlier sync) and loads it as the engine's model. The engine's
// logits (precise numerics) then match the trainer's QAT forward within the parity tolerance.
std::shared_ptr<const ModelWeights> sync_engine_model(const TrainModel& m, const std::string& dir);

// Mean over the positions where mask [B, S] is 1 of KL(p_student || p_teacher), the full
// vocabulary sum, from logits [B, S, V] (teacher: no gradient).
torch::Tensor reverse_kl(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits, const torch::Tensor& mask);

// log p(tokens[:, t+1] | tokens[:, ..t]) for t < S-1 from logits [B, S, V] (divided by
// `temperature` first): [B, S-1].
torch::Tensor token_logprobs(const torch::Tensor& logits, const torch::Tensor& tokens, double temperature = 1.0);

}  // namespace dsv4::train
