// Optimisers of the V4 recipe: Muon for the hidden 2-D matrices (Nesterov momentum, Newton-
// Schulz orthogonalisation with V4's hybrid schedule, update RMS matched to AdamW, decoupled
// weight decay) and AdamW for everything else (embeddings, head, norms, gates, mHC, sinks).
// torch header: train layer only.
#pragma once
#include <torch/types.h>

#include <map>
#include <string>

#include "train/model.h"

namespace dsv4::train {

struct OptimConfig {
  double weight_decay = 0.1;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;  // AdamW
  double muon_momentum = 0.95;
  double muon_scale = 0.18;  // update RMS matching: scale * sqrt(max(fan_out, fan_in))
  bool use_muon = true;      // false: AdamW for every parameter
  // Newton-Schulz iterations in BF16 (as the public Muon implementations run them; oneDNN's
  // BF16 GEMM is ~2x FP32 here). With small batches the orthogonalisation costs more FLOPs
  // than the model's step (10 x 3 GEMMs per matrix per step).
  bool ns_bf16 = false;
};

// Newton-Schulz orthogonalisation of a 2-D matrix (V4's hybrid schedule: 8 iterations with
// (3.4445, -4.7750, 2.0315), then 2 with (2, -1.5, 0.5)), after normalising by the Frobenius
// norm; computed on the wide orientation (rows <= cols) in the input's dtype.
// compute: the dtype of the iterations (the result has g's dtype).
torch::Tensor newton_schulz(const torch::Tensor& g, torch::Dtype compute);

// One AdamW step (step count t >= 1) on p in place.
void adamw_step(torch::Tensor& p, const torch::Tensor& g, torch::Tensor& m, torch::Tensor& v, int64_t t, double lr,
                const OptimConfig& cfg);
// One Muon step on p in place (buf: momentum).
void muon_step(torch::Tensor& p, const torch::Tensor& g, torch::Tensor& buf, double lr, const OptimConfig& cfg);

class Optimizer {
 public:
  Optimizer(TrainModel& model, OptimConfig cfg);
  // Applies one step to every parameter with a gradient, at learning rate lr.
  void step(double lr);
  int64_t steps() const { return t_; }
  // State tensors by name ("adam.m.NAME", "adam.v.NAME", "muon.buf.NAME") for checkpoints;
  // load_state checks that every expected tensor is present with the right shape.
  std::map<std::string, torch::Tensor> state() const;
  void load_state(const std::map<std::string, torch::Tensor>& s, int64_t steps);

 private:
  TrainModel& model_;
  OptimConfig cfg_;
  int64_t t_ = 0;
  std::map<std::string, torch::Tensor> m_, v_, buf_;
};

}  // namespace dsv4::train
