// Scalar number formats: BF16, FP8 E4M3 (float8_e4m3fn), FP4 E2M1, E8M0 scales.
// Decoding is exact; encoding rounds to nearest even and saturates (E4M3: +-448, E2M1: +-6).
#pragma once
#include <cstdint>

namespace dsv4 {

float bf16_to_f32(uint16_t bits);
uint16_t f32_to_bf16(float x);   // round to nearest even (NaN stays NaN)
float round_bf16(float x);       // f32 -> bf16 -> f32

float e4m3_to_f32(uint8_t code);   // 0x7F / 0xFF are NaN; subnormals included
uint8_t f32_to_e4m3(float x);      // RNE, saturating to +-448
float e2m1_to_f32(uint8_t code);   // low 4 bits: 0,0.5,1,1.5,2,3,4,6 and negatives (bit 3)
uint8_t f32_to_e2m1(float x);      // RNE, saturating to +-6
float e8m0_to_f32(uint8_t code);   // 2^(code-127); 0xFF is NaN

}  // namespace dsv4
