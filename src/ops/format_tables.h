// Decode tables of the small float formats, for inlined use in hot loops (formats.h has the
// function interface). Values are exact.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>

namespace dsv4::format_tables {

// E4M3 (float8_e4m3fn): sign, 4 exponent bits (bias 7), 3 mantissa bits. Exponent field 0
// holds subnormals m * 2^-9; 0x7F / 0xFF are the only NaNs (no infinities), so the exponent
// field 15 with mantissa < 7 is an ordinary normal number (up to 1.75 * 2^8 = 448).
constexpr float decode_e4m3(uint8_t code) {
  const int exponent = (code >> 3) & 0xF;
  const int mantissa = code & 0x7;
  float magnitude = 0.0f;
  if (exponent == 0xF && mantissa == 0x7) {
    magnitude = std::numeric_limits<float>::quiet_NaN();
  } else if (exponent == 0) {
    magnitude = static_cast<float>(mantissa) / 512.0f;  // m * 2^-9, exact
  } else {
    float scale = 1.0f;  // 2^(exponent - 7), built by exact doublings / halvings
    for (int e = exponent; e > 7; --e) scale *= 2.0f;
    for (int e = exponent; e < 7; ++e) scale /= 2.0f;
    magnitude = (1.0f + static_cast<float>(mantissa) / 8.0f) * scale;
  }
  return (code & 0x80) ? -magnitude : magnitude;
}

constexpr std::array<float, 256> make_e4m3_table() {
  std::array<float, 256> t{};
  for (int c = 0; c < 256; ++c) t[static_cast<std::size_t>(c)] = decode_e4m3(static_cast<uint8_t>(c));
  return t;
}

inline constexpr std::array<float, 256> kE4m3 = make_e4m3_table();

// E2M1: bit 3 sign, bits 2-1 exponent, bit 0 mantissa.
inline constexpr std::array<float, 16> kE2m1 = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                                                -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

}  // namespace dsv4::format_tables
