// The exact scalar matrix product: every product formed exactly in double and accumulated in
// double, K blocks in K order, one rounding to the output dtype. It defines what linear()
// computes; linear() uses its SIMD kernels instead wherever they give the same results (see
// linear_kernels.h) and falls back to this for the rest. Tests compare the kernels with it.
#pragma once
#include <cstdint>

#include "ops/linear.h"

namespace dsv4 {

// Same contract as linear(), single-threaded.
void linear_reference(const WeightMatrix& w, const float* x, int64_t ldx, int64_t n_tokens, float* y, int64_t ldy,
                      Numerics numerics, LinearCompute compute = LinearCompute::kNative);

}  // namespace dsv4
