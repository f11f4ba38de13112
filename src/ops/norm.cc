#include "ops/norm.h"

#include "ops/formats.h"
#include "ops/math.h"

namespace dsv4 {

void rms_norm(const float* x, int64_t n_rows, int64_t d, const uint16_t* weight_bf16, double eps, float* y,
              Numerics numerics) {
  // The reference adds the Python eps to an FP32 tensor: eps is used as an FP32 value.
  const float eps_f = static_cast<float>(eps);
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* xr = x + r * d;
    float* yr = y + r * d;
    // mean(x^2) as torch computes x.square().mean(): FP32 squares, their sum (reduced in
    // double, rounded once to FP32), then an FP32 division by d. Dividing in double instead
    // changes the last bit of some rows against the golden data.
    double sum = 0.0;
    for (int64_t i = 0; i < d; ++i) sum += static_cast<double>(xr[i] * xr[i]);
    const float mean_sq = static_cast<float>(sum) / static_cast<float>(d);
    const float inv = rsqrt_f32(mean_sq + eps_f);
    for (int64_t i = 0; i < d; ++i) {
      float v = xr[i] * inv;
      if (weight_bf16 != nullptr) v = bf16_to_f32(weight_bf16[i]) * v;
      yr[i] = numerics == Numerics::kReference ? round_bf16(v) : v;
    }
  }
}

}  // namespace dsv4
