#include "ops/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include "base/error.h"
#include "ops/formats.h"

namespace dsv4 {
namespace {

// Dimension index whose wavelength completes `n_rot` rotations over the original context
// (YaRN's correction dimension), evaluated in double like the reference's Python math.
double correction_dim(double n_rot, const RopeParams& p) {
  return static_cast<double>(p.rope_dim) *
         std::log(static_cast<double>(p.original_seq_len) / (n_rot * 2.0 * std::numbers::pi)) /
         (2.0 * std::log(p.theta));
}

}  // namespace

RopeTable make_rope_table(const RopeParams& params) {
  if (params.rope_dim <= 0 || params.rope_dim % 2 != 0) {
    throw Error("RoPE: rope_dim must be positive and even, got " + std::to_string(params.rope_dim));
  }
  RopeTable table;
  table.params = params;
  const int64_t pairs = params.rope_dim / 2;
  table.freqs.resize(static_cast<size_t>(pairs));
  const float base = static_cast<float>(params.theta);
  const float dim_f = static_cast<float>(params.rope_dim);
  for (int64_t i = 0; i < pairs; ++i) {
    // The reference: 1 / (base ** (arange(0, dim, 2, fp32) / dim)), all FP32; the power is
    // evaluated in double and rounded once (the golden data's rule for transcendentals).
    const float exponent = static_cast<float>(2 * i) / dim_f;
    const float power = static_cast<float>(std::pow(static_cast<double>(base), static_cast<double>(exponent)));
    table.freqs[static_cast<size_t>(i)] = 1.0f / power;
  }
  if (!params.yarn) return table;

  int64_t low = static_cast<int64_t>(std::floor(correction_dim(params.beta_fast, params)));
  int64_t high = static_cast<int64_t>(std::ceil(correction_dim(params.beta_slow, params)));
  low = std::max<int64_t>(low, 0);
  high = std::min<int64_t>(high, params.rope_dim - 1);
  table.yarn_low = low;
  table.yarn_high = high;
  // The reference adds 0.001 to `high` when the range is empty (a Python float).
  const double span = (low == high) ? static_cast<double>(high) + 0.001 - static_cast<double>(low)
                                    : static_cast<double>(high - low);
  const float span_f = static_cast<float>(span);
  const float factor_f = static_cast<float>(params.factor);
  for (int64_t i = 0; i < pairs; ++i) {
    // FP32 tensor arithmetic as in the reference: ramp = clamp((i - low) / span, 0, 1),
    // smooth = 1 - ramp, freq = freq / factor * (1 - smooth) + freq * smooth.
    const float ramp = std::clamp((static_cast<float>(i) - static_cast<float>(low)) / span_f, 0.0f, 1.0f);
    const float smooth = 1.0f - ramp;
    const float f = table.freqs[static_cast<size_t>(i)];
    const float scaled = (f / factor_f) * (1.0f - smooth);
    const float kept = f * smooth;
    table.freqs[static_cast<size_t>(i)] = scaled + kept;
  }
  return table;
}

void apply_rope(float* x, int64_t pos, const RopeTable& table, bool inverse, Numerics numerics) {
  apply_rope_heads(x, 1, 0, pos, table, inverse, numerics);
}

void apply_rope_heads(float* x, int64_t heads, int64_t stride, int64_t pos, const RopeTable& table, bool inverse,
                      Numerics numerics) {
  const int64_t pairs = static_cast<int64_t>(table.freqs.size());
  const float pos_f = static_cast<float>(pos);
  constexpr int64_t kChunk = 64;  // pairs per pass: cos / sin on the stack, no allocation
  float cs[kChunk], sn[kChunk];
  for (int64_t i0 = 0; i0 < pairs; i0 += kChunk) {
    const int64_t i1 = std::min(pairs, i0 + kChunk);
    for (int64_t i = i0; i < i1; ++i) {
      // Angle in FP32 (outer(arange, freqs)), cos/sin of that FP32 angle in double, rounded once.
      const float angle = pos_f * table.freqs[static_cast<size_t>(i)];
      cs[i - i0] = static_cast<float>(std::cos(static_cast<double>(angle)));
      const float s = static_cast<float>(std::sin(static_cast<double>(angle)));
      sn[i - i0] = inverse ? -s : s;  // the conjugate: rotation by -angle
    }
    for (int64_t h = 0; h < heads; ++h) {
      float* xh = x + h * stride;
      for (int64_t i = i0; i < i1; ++i) {
        const float c = cs[i - i0], s = sn[i - i0];
        const float a = xh[2 * i];
        const float b = xh[2 * i + 1];
        // Complex64 product, FP32 operations.
        float re = a * c - b * s;
        float im = a * s + b * c;
        if (numerics == Numerics::kReference) {
          re = round_bf16(re);
          im = round_bf16(im);
        }
        xh[2 * i] = re;
        xh[2 * i + 1] = im;
      }
    }
  }
}

}  // namespace dsv4
