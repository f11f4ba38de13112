// The trainer's V4 model: a second implementation of the V4 graph (spec 3) in torch ops, for
// training (whole sequences from position 0, no KV caches, autograd). Parameters keep the
// official tensor names with logical FP32 shapes (FP8 / FP4 weights dequantised), so loading
// and exporting the release layout is a name-by-name mapping.
//
// This header includes torch: only the train layer and its tests include it.
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/dtype.h"
#include "model/config.h"

namespace dsv4::train {

// How a parameter is stored in the release layout (and fake-quantised under QAT).
enum class StoreFormat : uint8_t { kF32, kBf16, kFp8Block, kFp4 };

struct ParamInfo {
  StoreFormat format = StoreFormat::kF32;
  bool muon = false;  // a hidden 2-D matrix (Muon); otherwise AdamW
};

// Lightning indexer phase (V3.2 / V4 training): dense warm-up (attention over every visible
// compressed entry; the indexer learns from its KL loss) or sparse (top-k selection).
enum class IndexerPhase : uint8_t { kDense, kSparse };

struct ForwardOptions {
  bool mtp = true;              // also run the MTP block (needs S >= 2)
  bool qat = false;             // fake-quantise weights as the release stores them (STE)
  IndexerPhase indexer = IndexerPhase::kSparse;
  bool indexer_loss = false;    // compute the indexer's KL loss
  bool bf16 = false;            // mixed precision: projections in BF16 (oneDNN), FP32 elsewhere
  bool dense_attention = false; // window scores as S x S (the test oracle of the default
                                // block-banded form, whose cost grows linearly in S)
};

struct ForwardResult {
  torch::Tensor logits;         // [B, S, V]
  torch::Tensor mtp_logits;     // [B, S-1, V] (row i predicts token i+2); undefined without MTP
  torch::Tensor indexer_kl;     // scalar, sum over CSA layers (0 when not asked / no CSA layer)
  torch::Tensor balance_loss;   // scalar, sum over learned-routing layers of the sequence-wise loss
  std::vector<int64_t> routed_layers;     // block index (MTP: n_layers + i) of each entry below
  std::vector<torch::Tensor> expert_load; // [E] tokens routed to each expert (float, no grad)
};

struct TrainModel {
  ModelConfig config;
  std::vector<std::string> names;                // trainable parameters in release order
  std::map<std::string, torch::Tensor> params;   // trainable (requires_grad), FP32 or FP64
  std::map<std::string, ParamInfo> info;
  std::map<std::string, torch::Tensor> buffers;  // gate.bias (aux-loss-free balancing), tid2eid

  const torch::Tensor& p(const std::string& name) const;
  const torch::Tensor& buf(const std::string& name) const;
  int64_t n_params() const;  // logical parameter count
  TrainModel to(torch::Dtype dtype) const;  // a deep copy in another float dtype
};

// Loads an official-layout directory (config.json + safetensors), dequantising exactly.
TrainModel load_official(const std::string& dir);
// A freshly initialised model for `config` (deterministic from seed).
TrainModel init_model(const ModelConfig& config, uint64_t seed);

// Auxiliary-loss-free balancing (V3 / V4): after a step, each learned-routing layer's
// gate.bias moves by rate * sign(mean load - load) (the bias only enters expert selection).
// Returns the mean over those layers of max load / mean load before the update (0 if none).
double update_routing_bias(TrainModel& m, const ForwardResult& r, double rate);

// Trainer checkpoints (train/checkpoint.h): writes the model part (param.*, buffer.*, meta.*
// with the given step) atomically, or reads the parameters and buffers of one back.
void save_model_checkpoint(const std::string& path, const TrainModel& m, int64_t step);
TrainModel load_model_checkpoint(const std::string& path);

// Mean cross-entropy of logits [..., V] against targets [...] over the positions where mask
// [...] (0/1) is 1; masked-out positions contribute nothing (value or gradient).
torch::Tensor masked_cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets, const torch::Tensor& mask);

// tokens: [B, S] int64 (every sequence from position 0).
ForwardResult forward(const TrainModel& m, const torch::Tensor& tokens, const ForwardOptions& opt);

// Custom autograd functions (exposed for gradient checks).
// The mHC Sinkhorn projection of comb logits [..., hc, hc] (softmax over rows + eps, then
// column / row normalisations, `iters` in all), with a hand-written backward that recomputes
// the iterations (one node instead of 2 * iters).
torch::Tensor sinkhorn(const torch::Tensor& logits, int64_t iters, double eps);
// Reference for tests: the same iterations in plain torch ops.
torch::Tensor sinkhorn_plain(const torch::Tensor& logits, int64_t iters, double eps);
// Straight-through fake quantisation to the stored format (FP8 128x128 UE8M0 blocks, FP4 E2M1
// with E8M0 scales per 32 inputs, BF16): forward = exactly what export writes and the engine
// reads back, backward = identity.
torch::Tensor fake_quant(const torch::Tensor& w, StoreFormat format, int64_t block);

}  // namespace dsv4::train
