// Transcendental functions as the golden data evaluates them: in double, rounded once to
// FP32 (PyTorch's vectorised and scalar paths differ by an ulp; this is the canonical value).
#pragma once
#include <cmath>

namespace dsv4 {

inline float exp_f32(float x) { return static_cast<float>(std::exp(static_cast<double>(x))); }
inline float sigmoid_f32(float x) { return static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(x)))); }
inline float silu_f32(float x) {
  double d = x;
  return static_cast<float>(d / (1.0 + std::exp(-d)));
}
inline float rsqrt_f32(float x) { return static_cast<float>(1.0 / std::sqrt(static_cast<double>(x))); }
inline float sqrt_f32(float x) { return static_cast<float>(std::sqrt(static_cast<double>(x))); }
// softplus with PyTorch's threshold 20 (returns x above it).
inline float softplus_f32(float x) {
  if (x > 20.0f) return x;
  return static_cast<float>(std::log1p(std::exp(static_cast<double>(x))));
}

}  // namespace dsv4
