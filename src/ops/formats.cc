#include "ops/formats.h"

#include <bit>
#include <cmath>
#include <limits>

#include "ops/format_tables.h"

namespace dsv4 {
namespace {

using format_tables::kE2m1;
using format_tables::kE4m3;

// Rounds a >= 0 to the nearest multiple of `quantum` (a power of two), ties to even multiple.
// a / quantum and the product are exact, and nearbyint rounds half to even in the default
// floating-point environment.
inline float round_to_quantum(float a, float quantum) { return std::nearbyint(a / quantum) * quantum; }

// Exponent e with 2^e <= a < 2^(e+1), for finite a > 0.
inline int floor_log2(float a) {
  int e = 0;
  std::frexp(a, &e);  // a = f * 2^e, f in [0.5, 1)
  return e - 1;
}

}  // namespace

float e4m3_to_f32(uint8_t code) { return kE4m3[code]; }

uint8_t f32_to_e4m3(float x) {
  const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  if (std::isnan(x)) return static_cast<uint8_t>(sign | 0x7F);
  float a = std::fabs(x);
  if (a >= 448.0f) return static_cast<uint8_t>(sign | 0x7E);  // saturate (also infinities)
  if (a < 0.015625f) {
    // Subnormal range (below 2^-6): multiples of 2^-9. A result of 8 * 2^-9 = 2^-6 is the
    // code 0x08 of the smallest normal, so the code is the multiple itself.
    const int m = static_cast<int>(round_to_quantum(a, 0.001953125f) * 512.0f);
    return static_cast<uint8_t>(sign | m);
  }
  int e = floor_log2(a);                                  // -6..8
  a = round_to_quantum(a, std::ldexp(1.0f, e - 3));       // 3 mantissa bits
  if (a >= 448.0f) return static_cast<uint8_t>(sign | 0x7E);  // 448 < a < 464 rounds down to 448 anyway
  e = floor_log2(a);                                      // a carry may have bumped the exponent
  const int mantissa = static_cast<int>(std::ldexp(a, 3 - e)) - 8;
  return static_cast<uint8_t>(sign | ((e + 7) << 3) | mantissa);
}

float e2m1_to_f32(uint8_t code) { return kE2m1[code & 0xF]; }

uint8_t f32_to_e2m1(float x) {
  const uint8_t sign = std::signbit(x) ? 0x8 : 0x0;
  float a = std::fabs(x);
  if (std::isnan(x)) return sign;  // E2M1 has no NaN; callers never pass one (amax is finite)
  if (a >= 6.0f) return static_cast<uint8_t>(sign | 0x7);
  // Grid spacing: 0.5 below 2 (subnormal 0.5 and exponent 1), 1 in [2, 4), 2 in [4, 6].
  const float quantum = a < 2.0f ? 0.5f : (a < 4.0f ? 1.0f : 2.0f);
  a = round_to_quantum(a, quantum);
  uint8_t code = 0;
  for (uint8_t c = 0; c < 8; ++c) {
    if (kE2m1[c] == a) code = c;
  }
  return static_cast<uint8_t>(sign | code);
}

float e8m0_to_f32(uint8_t code) {
  if (code == 0xFF) return std::numeric_limits<float>::quiet_NaN();
  return std::ldexp(1.0f, static_cast<int>(code) - 127);
}

}  // namespace dsv4
