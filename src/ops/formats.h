// Scalar number formats: BF16, FP8 E4M3 (float8_e4m3fn), FP4 E2M1, E8M0 scales.
// Decoding is exact; encoding rounds to nearest even and saturates (E4M3: +-448, E2M1: +-6).
#pragma once
#include <bit>
#include <cstdint>

namespace dsv4 {

// BF16 conversions are inline: the reference numerics round to BF16 in inner loops.
inline float bf16_to_f32(uint16_t bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }

// Round to nearest even (NaN stays NaN).
inline uint16_t f32_to_bf16(float x) {
  const uint32_t u = std::bit_cast<uint32_t>(x);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x0040);  // keep it a quiet NaN
  // Round to nearest even on the 16 dropped bits; a carry into the exponent is the correct
  // result (including overflow to infinity).
  const uint32_t rounding_bias = 0x7FFF + ((u >> 16) & 1);
  return static_cast<uint16_t>((u + rounding_bias) >> 16);
}

inline float round_bf16(float x) { return bf16_to_f32(f32_to_bf16(x)); }  // f32 -> bf16 -> f32

float e4m3_to_f32(uint8_t code);   // 0x7F / 0xFF are NaN; subnormals included
uint8_t f32_to_e4m3(float x);      // RNE, saturating to +-448
float e2m1_to_f32(uint8_t code);   // low 4 bits: 0,0.5,1,1.5,2,3,4,6 and negatives (bit 3)
uint8_t f32_to_e2m1(float x);      // RNE, saturating to +-6
float e8m0_to_f32(uint8_t code);   // 2^(code-127); 0xFF is NaN

}  // namespace dsv4
