// Sinkhorn-Knopp projection of mHC's residual mixing matrix (spec 3.2), FP32.
#pragma once
#include <cstdint>

namespace dsv4 {

// m: n x n row-major logits, projected in place: row softmax + eps, column normalisation,
// then (iters - 1) x (row, column) normalisations, each with + eps in the denominator.
void sinkhorn_project(float* m, int64_t n, int64_t iters, float eps);

}  // namespace dsv4
