// RMSNorm (spec 3.0.1): y = w * (x * rsqrt(mean(x^2) + eps)), per row of d values.
#pragma once
#include <cstdint>

#include "ops/numerics.h"

namespace dsv4 {

// x, y: [n_rows, d] contiguous (may alias). weight_bf16: d BF16 values, or null (unweighted).
// kReference rounds y to BF16 (the reference casts the result back to the BF16 input dtype).
void rms_norm(const float* x, int64_t n_rows, int64_t d, const uint16_t* weight_bf16, double eps, float* y,
              Numerics numerics);

}  // namespace dsv4
