#include "ops/quant_sim.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "ops/formats.h"

namespace dsv4 {
namespace {

// 2^ceil(log2(v)) for a positive normal v, from its bits as the reference kernels do it:
// the exponent field, plus one when any mantissa bit is set.
float pow2_ceil_from_bits(float v) {
  const uint32_t bits = std::bit_cast<uint32_t>(v);
  const uint32_t exponent = (bits >> 23) & 0xFF;
  const uint32_t round_up = (bits & 0x7FFFFF) != 0 ? 1 : 0;
  return std::bit_cast<float>((exponent + round_up) << 23);
}

float block_amax(const float* x, int64_t n) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  return amax;
}

// act_quant's scale of one block: amax floored at 1e-4, times fl32(1/448) (a multiply, not a
// division), rounded up to a power of two.
float fp8_block_scale(const float* x, int64_t n) {
  const float a = std::max(block_amax(x, n), 1e-4f);
  return pow2_ceil_from_bits(a * (1.0f / 448.0f));
}

}  // namespace

void act_quant_fp8(const float* x, int64_t n, int64_t block, uint8_t* codes, float* scales) {
  // A trailing partial block (n not a multiple of block) is quantised on its own.
  for (int64_t b0 = 0, bi = 0; b0 < n; b0 += block, ++bi) {
    const int64_t len = std::min(block, n - b0);
    const float s = fp8_block_scale(x + b0, len);
    scales[bi] = s;
    for (int64_t i = 0; i < len; ++i) {
      // x / s is exact (s is a power of two); the clamp keeps the saturating cast explicit.
      const float q = std::clamp(x[b0 + i] / s, -448.0f, 448.0f);
      codes[b0 + i] = f32_to_e4m3(q);
    }
  }
}

void act_quant_fp8_values(const float* x, int64_t n, int64_t block, float* values, float* scales) {
  for (int64_t b0 = 0, bi = 0; b0 < n; b0 += block, ++bi) {
    const int64_t len = std::min(block, n - b0);
    const float s = fp8_block_scale(x + b0, len);
    scales[bi] = s;
    for (int64_t i = 0; i < len; ++i) {
      const float q = std::clamp(x[b0 + i] / s, -448.0f, 448.0f);
      if (std::isnan(q)) {
        values[b0 + i] = q;
        continue;
      }
      const float a = std::fabs(q);
      float r;
      if (a < 0.015625f) {
        // E4M3 subnormals: multiples of 2^-9. Adding 2^14 puts a in [2^14, 2^15), where the
        // FP32 spacing is 2^-9, so the addition rounds it to nearest even there.
        r = (a + 16384.0f) - 16384.0f;
      } else {
        // Normal: round to nearest even on the 20 mantissa bits E4M3 drops; a carry into the
        // exponent is the right result. |q| <= 448 = 1.75 * 2^8, so nothing saturates.
        const uint32_t bits = std::bit_cast<uint32_t>(a);
        r = std::bit_cast<float>((bits + 0x7FFFFu + ((bits >> 20) & 1u)) & 0xFFF00000u);
      }
      values[b0 + i] = std::copysign(r, q) * s;
    }
  }
}

void fp8_simulate(float* x, int64_t n, int64_t block) {
  for (int64_t b0 = 0; b0 < n; b0 += block) {
    const int64_t len = std::min(block, n - b0);
    const float s = fp8_block_scale(x + b0, len);
    for (int64_t i = 0; i < len; ++i) {
      const float q = std::clamp(x[b0 + i] / s, -448.0f, 448.0f);
      x[b0 + i] = round_bf16(e4m3_to_f32(f32_to_e4m3(q)) * s);  // exact in BF16 already
    }
  }
}

void fp4_simulate(float* x, int64_t n, int64_t block) {
  // The amax floor 6 * 2^-126 keeps a * fl32(1/6) a normal number (scale >= 2^-126).
  const float amax_floor = 6.0f * std::ldexp(1.0f, -126);
  for (int64_t b0 = 0; b0 < n; b0 += block) {
    const int64_t len = std::min(block, n - b0);
    const float a = std::max(block_amax(x + b0, len), amax_floor);
    const float s = pow2_ceil_from_bits(a * (1.0f / 6.0f));
    for (int64_t i = 0; i < len; ++i) {
      const float q = std::clamp(x[b0 + i] / s, -6.0f, 6.0f);
      x[b0 + i] = round_bf16(e2m1_to_f32(f32_to_e2m1(q)) * s);
    }
  }
}

void hadamard_rotate(float* x, int64_t n) {
  // Sylvester butterfly, H_2n = [[H_n, H_n], [H_n, -H_n]]: stage h combines elements h apart,
  // h = 1, 2, 4, ... in FP32; the 1/sqrt(n) normalisation is one FP32 multiply at the end.
  for (int64_t h = 1; h < n; h *= 2) {
    for (int64_t i = 0; i < n; i += 2 * h) {
      for (int64_t j = i; j < i + h; ++j) {
        const float a = x[j];
        const float b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
    }
  }
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(n)));
  for (int64_t i = 0; i < n; ++i) x[i] *= scale;
}

}  // namespace dsv4
