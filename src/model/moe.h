// Mixture-of-experts feed-forward (spec 3.7): sqrt-softplus router (bias for selection only,
// hash routing from tid2eid in the first n_hash_layers layers), weights renormalised and
// scaled, clamped SwiGLU experts, shared expert, FP32 combine in ascending expert id then the
// shared expert.
#pragma once
#include <cstdint>

#include "model/config.h"
#include "model/state.h"
#include "model/weights.h"

namespace dsv4 {

struct MoeTrace {
  int64_t* indices = nullptr;  // [n, k] selected experts, in the reference's order
  float* weights = nullptr;    // [n, k]
  float* scores = nullptr;     // [n, n_routed_experts] unbiased router scores
};

// Router only: scores [n, E], indices [n, k], weights [n, k].
void moe_route(const ModelConfig& c, const MoeWeights& w, bool hash, const float* x, const int64_t* tokens, int64_t n,
               float* scores, int64_t* indices, float* weights, Numerics nm = Numerics::kReference);

// x: ffn_norm output [n, D]; tokens: the token ids of the rows (hash routing); out: [n, D].
void moe_forward(const ModelConfig& c, const MoeWeights& w, bool hash, const float* x, const int64_t* tokens,
                 int64_t n, Numerics nm, Workspace& ws, float* out, MoeTrace* trace);

}  // namespace dsv4
