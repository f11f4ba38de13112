#include "ops/formats.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>

namespace dsv4 {
namespace {

TEST(Bf16, DecodeAndRoundNearestEven) {
  EXPECT_EQ(bf16_to_f32(0x3F80), 1.0f);
  EXPECT_EQ(bf16_to_f32(0xC000), -2.0f);
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3F80);
  // 1 + 2^-8 lies halfway between 1 (even mantissa) and 1 + 2^-7: rounds down.
  EXPECT_EQ(round_bf16(1.0f + std::ldexp(1.0f, -8)), 1.0f);
  // 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): rounds up.
  EXPECT_EQ(round_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 1.0f + std::ldexp(1.0f, -6));
  // Just above the first midpoint rounds up.
  EXPECT_EQ(round_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), 1.0f + std::ldexp(1.0f, -7));
  EXPECT_EQ(round_bf16(-1.0f - std::ldexp(1.0f, -8)), -1.0f);
  EXPECT_TRUE(std::isnan(round_bf16(NAN)));
  EXPECT_EQ(round_bf16(INFINITY), INFINITY);
  EXPECT_EQ(round_bf16(3.4028235e38f), INFINITY);  // max float rounds past the largest bf16
  EXPECT_TRUE(std::signbit(round_bf16(-0.0f)));
}

TEST(E4m3, DecodeTable) {
  EXPECT_EQ(e4m3_to_f32(0x00), 0.0f);
  EXPECT_FALSE(std::signbit(e4m3_to_f32(0x00)));
  EXPECT_EQ(e4m3_to_f32(0x80), 0.0f);
  EXPECT_TRUE(std::signbit(e4m3_to_f32(0x80)));
  EXPECT_EQ(e4m3_to_f32(0x01), std::ldexp(1.0f, -9));    // smallest subnormal
  EXPECT_EQ(e4m3_to_f32(0x81), -std::ldexp(1.0f, -9));
  EXPECT_EQ(e4m3_to_f32(0x07), 7 * std::ldexp(1.0f, -9));  // largest subnormal
  EXPECT_EQ(e4m3_to_f32(0x08), std::ldexp(1.0f, -6));    // smallest normal
  EXPECT_EQ(e4m3_to_f32(0x0F), 1.875f * std::ldexp(1.0f, -6));
  EXPECT_EQ(e4m3_to_f32(0x38), 1.0f);
  EXPECT_EQ(e4m3_to_f32(0x39), 1.125f);
  EXPECT_EQ(e4m3_to_f32(0x77), 240.0f);
  EXPECT_EQ(e4m3_to_f32(0x78), 256.0f);
  EXPECT_EQ(e4m3_to_f32(0x7E), 448.0f);
  EXPECT_EQ(e4m3_to_f32(0xFE), -448.0f);
  EXPECT_TRUE(std::isnan(e4m3_to_f32(0x7F)));
  EXPECT_TRUE(std::isnan(e4m3_to_f32(0xFF)));
  // Strictly increasing over the positive codes, and sign-symmetric.
  for (int c = 1; c <= 0x7E; ++c) {
    EXPECT_LT(e4m3_to_f32(static_cast<uint8_t>(c - 1)), e4m3_to_f32(static_cast<uint8_t>(c))) << c;
    EXPECT_EQ(e4m3_to_f32(static_cast<uint8_t>(c | 0x80)), -e4m3_to_f32(static_cast<uint8_t>(c))) << c;
  }
}

TEST(E4m3, EncodeRoundTripsEveryCode) {
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7F) == 0x7F) continue;
    EXPECT_EQ(f32_to_e4m3(e4m3_to_f32(static_cast<uint8_t>(c))), c) << c;
  }
}

TEST(E4m3, EncodeTiesToEvenAndSaturates) {
  EXPECT_EQ(f32_to_e4m3(1.0625f), 0x38);   // between 1 (0x38) and 1.125 (0x39)
  EXPECT_EQ(f32_to_e4m3(1.1875f), 0x3A);   // between 1.125 (0x39) and 1.25 (0x3A)
  EXPECT_EQ(f32_to_e4m3(-1.0625f), 0xB8);
  const float q = std::ldexp(1.0f, -9);
  EXPECT_EQ(f32_to_e4m3(0.5f * q), 0x00);  // between 0 and the smallest subnormal
  EXPECT_EQ(f32_to_e4m3(1.5f * q), 0x02);
  EXPECT_EQ(f32_to_e4m3(2.5f * q), 0x02);
  EXPECT_EQ(f32_to_e4m3(7.5f * q), 0x08);  // largest subnormal / smallest normal
  EXPECT_EQ(f32_to_e4m3(0.25f * q), 0x00);
  EXPECT_EQ(f32_to_e4m3(432.0f), 0x7E);    // between 416 (0x7D) and 448 (0x7E): even is 0x7E
  EXPECT_EQ(f32_to_e4m3(420.0f), 0x7D);
  EXPECT_EQ(f32_to_e4m3(460.0f), 0x7E);
  EXPECT_EQ(f32_to_e4m3(500.0f), 0x7E);
  EXPECT_EQ(f32_to_e4m3(1e30f), 0x7E);
  EXPECT_EQ(f32_to_e4m3(-INFINITY), 0xFE);
  EXPECT_TRUE(std::isnan(e4m3_to_f32(f32_to_e4m3(NAN))));
}

// Brute force: the encoding is the nearest finite code, ties to the even code.
TEST(E4m3, EncodeIsNearestEven) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> mag(-12.0f, 9.5f);
  for (int i = 0; i < 20000; ++i) {
    float x = std::exp2(mag(rng)) * ((i & 1) ? -1.0f : 1.0f);
    if (i % 3 == 0) {  // exact midpoints between neighbouring codes
      const int c = static_cast<int>(rng() % 0x7E);
      x = 0.5f * (e4m3_to_f32(static_cast<uint8_t>(c)) + e4m3_to_f32(static_cast<uint8_t>(c + 1)));
    }
    const float clamped = std::fmin(std::fmax(x, -448.0f), 448.0f);
    const uint8_t got = f32_to_e4m3(x);
    const float err = std::fabs(e4m3_to_f32(got) - clamped);
    for (int c = 0; c < 256; ++c) {
      if ((c & 0x7F) == 0x7F) continue;
      const float e = std::fabs(e4m3_to_f32(static_cast<uint8_t>(c)) - clamped);
      ASSERT_LE(err, e) << "x=" << x << " code " << int(got) << " vs " << c;
      if (e == err && e4m3_to_f32(static_cast<uint8_t>(c)) != e4m3_to_f32(got)) {
        ASSERT_EQ(got & 1, 0) << "tie not to even, x=" << x;
      }
    }
  }
}

TEST(E2m1, DecodeTable) {
  const float expected[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};
  for (int c = 0; c < 16; ++c) EXPECT_EQ(e2m1_to_f32(static_cast<uint8_t>(c)), expected[c]) << c;
  EXPECT_TRUE(std::signbit(e2m1_to_f32(8)));
  EXPECT_EQ(e2m1_to_f32(0xF7), 6.0f);  // only the low nibble counts
}

TEST(E2m1, EncodeRoundTripTiesAndSaturation) {
  for (int c = 0; c < 16; ++c) EXPECT_EQ(f32_to_e2m1(e2m1_to_f32(static_cast<uint8_t>(c))), c) << c;
  EXPECT_EQ(e2m1_to_f32(f32_to_e2m1(0.25f)), 0.0f);
  EXPECT_EQ(e2m1_to_f32(f32_to_e2m1(0.75f)), 1.0f);
  EXPECT_EQ(e2m1_to_f32(f32_to_e2m1(1.25f)), 1.0f);
  EXPECT_EQ(e2m1_to_f32(f32_to_e2m1(1.75f)), 2.0f);
  EXPECT_EQ(e2m1_to_f32(f32_to_e2m1(2.5f)), 2.0f);
  EXPECT_EQ(e2m1_to_f32(f32_to_e2m1(3.5f)), 4.0f);
  EXPECT_EQ(e2m1_to_f32(f32_to_e2m1(5.0f)), 4.0f);
  EXPECT_EQ(e2m1_to_f32(f32_to_e2m1(5.1f)), 6.0f);
  EXPECT_EQ(e2m1_to_f32(f32_to_e2m1(2.6f)), 3.0f);
  EXPECT_EQ(e2m1_to_f32(f32_to_e2m1(7.0f)), 6.0f);
  EXPECT_EQ(e2m1_to_f32(f32_to_e2m1(-0.75f)), -1.0f);
  EXPECT_EQ(f32_to_e2m1(-0.75f), 0xA);
  EXPECT_EQ(e2m1_to_f32(f32_to_e2m1(-100.0f)), -6.0f);
}

TEST(E8m0, Decode) {
  EXPECT_EQ(e8m0_to_f32(127), 1.0f);
  EXPECT_EQ(e8m0_to_f32(128), 2.0f);
  EXPECT_EQ(e8m0_to_f32(120), 1.0f / 128.0f);
  EXPECT_EQ(e8m0_to_f32(0), std::ldexp(1.0f, -127));
  EXPECT_EQ(e8m0_to_f32(254), std::ldexp(1.0f, 127));
  EXPECT_TRUE(std::isnan(e8m0_to_f32(0xFF)));
}

}  // namespace
}  // namespace dsv4
