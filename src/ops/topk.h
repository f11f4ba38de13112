// Top-k selection: descending score, ties broken towards the lower index (the rule of the
// CUDA top-k the golden data follows).
#pragma once
#include <cstdint>

namespace dsv4 {

// Writes min(k, n) indices into out, ordered by descending score then ascending index.
// NaN scores rank lowest.
int64_t topk_indices(const float* scores, int64_t n, int64_t k, int64_t* out);

}  // namespace dsv4
