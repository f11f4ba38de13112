#include "ops/quant_sim.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>
#include <vector>

#include "ops/formats.h"

namespace dsv4 {
namespace {

// One block of act_quant with amax `amax` (first element) and the rest of the block `fill`.
float fp8_scale_for(float amax, int64_t block = 128) {
  std::vector<float> x(static_cast<size_t>(block), 0.0f);
  x[0] = amax;
  std::vector<uint8_t> codes(x.size());
  float s = 0;
  act_quant_fp8(x.data(), block, block, codes.data(), &s);
  return s;
}

TEST(ActQuant, ScaleIsPowerOfTwoCeilingOfAmaxOver448) {
  // fl32(1/448) * 448 == 1 exactly in FP32, so amax 448 gives scale 1 and anything above 2.
  EXPECT_EQ(fp8_scale_for(448.0f), 1.0f);
  EXPECT_EQ(fp8_scale_for(449.0f), 2.0f);
  EXPECT_EQ(fp8_scale_for(-448.0f), 1.0f);
  // amax 1: 1/448 = 0.00223 lies in (2^-9, 2^-8].
  EXPECT_EQ(fp8_scale_for(1.0f), std::ldexp(1.0f, -8));
  // amax 1.75: 1.75 * fl32(1/448) == 2^-8 exactly: no round-up.
  EXPECT_EQ(fp8_scale_for(1.75f), std::ldexp(1.0f, -8));
  // All zeros: amax floored at 1e-4; 1e-4 / 448 = 2.23e-7 lies in (2^-23, 2^-22].
  EXPECT_EQ(fp8_scale_for(0.0f), std::ldexp(1.0f, -22));
}

TEST(ActQuant, CodesAndPerBlockScales) {
  std::vector<float> x(256, 0.0f);
  x[0] = 1.0f;    // block 0: s = 2^-8
  x[1] = 0.3f;    // 76.8 -> 80 (spacing 8 in [64, 128))
  x[2] = -0.1f;   // -25.6 -> -26 (spacing 2 in [16, 32))
  x[128] = 448.0f;  // block 1: s = 1
  x[129] = 1.0625f;  // tie -> 1
  std::vector<uint8_t> codes(256);
  float scales[2];
  act_quant_fp8(x.data(), 256, 128, codes.data(), scales);
  EXPECT_EQ(scales[0], std::ldexp(1.0f, -8));
  EXPECT_EQ(scales[1], 1.0f);
  EXPECT_EQ(e4m3_to_f32(codes[0]), 256.0f);
  EXPECT_EQ(e4m3_to_f32(codes[1]), 80.0f);
  EXPECT_EQ(e4m3_to_f32(codes[2]), -26.0f);
  EXPECT_EQ(codes[3], 0x00);
  EXPECT_EQ(codes[128], 0x7E);
  EXPECT_EQ(e4m3_to_f32(codes[129]), 1.0f);
}

TEST(Fp8Simulate, HandValues) {
  std::vector<float> x(64, 0.0f);
  x[0] = 1.0f;
  x[1] = 0.3f;
  x[2] = -0.1f;
  x[3] = 1e-6f;  // 2.56e-4 in code units: rounds to 0
  fp8_simulate(x.data(), 64, 64);
  EXPECT_EQ(x[0], 1.0f);
  EXPECT_EQ(x[1], 0.3125f);
  EXPECT_EQ(x[2], -0.1015625f);
  EXPECT_EQ(x[3], 0.0f);
  // Blocks are independent: a second block with a different amax.
  std::vector<float> y(128, 0.0f);
  y[0] = 1.0f;
  y[64] = 448.0f;
  y[65] = 0.3f;  // s = 1: 0.3 -> 0.3125 (spacing 2^-5 in [0.25, 0.5))
  y[1] = 0.004f;  // s = 2^-8: 1.024 -> 1 -> 2^-8
  fp8_simulate(y.data(), 128, 64);
  EXPECT_EQ(y[65], 0.3125f);
  EXPECT_EQ(y[1], std::ldexp(1.0f, -8));
  EXPECT_EQ(y[64], 448.0f);
}

TEST(Fp4Simulate, HandValues) {
  // amax 1: 1 * fl32(1/6) = 0.1667 lies in (0.125, 0.25]: s = 0.25.
  std::vector<float> x(32, 0.0f);
  const float in[] = {1.0f, 0.3f, 0.45f, -0.7f, 0.0625f, 0.1875f, 0.875f, -0.625f};
  const float out[] = {1.0f, 0.25f, 0.5f, -0.75f, 0.0f, 0.25f, 1.0f, -0.5f};
  // 0.3/s = 1.2 -> 1; 0.45/s = 1.8 -> 2; -0.7/s = -2.8 -> -3; 0.25 -> 0 (tie, even);
  // 0.75 -> 1 (tie, even); 3.5 -> 4 (tie, even); -2.5 -> -2 (tie, even).
  for (int i = 0; i < 8; ++i) x[static_cast<size_t>(i)] = in[i];
  fp4_simulate(x.data(), 32, 32);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(x[static_cast<size_t>(i)], out[i]) << i;

  // amax 6: 6 * fl32(1/6) == 1 exactly: s = 1, values on the E2M1 grid stay.
  std::vector<float> y(32, 0.0f);
  y[0] = 6.0f;
  y[1] = -3.0f;
  y[2] = 5.0f;  // tie between 4 and 6 -> 4
  fp4_simulate(y.data(), 32, 32);
  EXPECT_EQ(y[0], 6.0f);
  EXPECT_EQ(y[1], -3.0f);
  EXPECT_EQ(y[2], 4.0f);

  // A zero block stays zero (amax floor keeps the scale finite and positive).
  std::vector<float> z(32, 0.0f);
  fp4_simulate(z.data(), 32, 32);
  for (float v : z) EXPECT_EQ(v, 0.0f);
}

TEST(Fp4Simulate, ResultsAreBf16OnTheScaledGrid) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  std::vector<float> x(128);
  for (float& v : x) v = nd(rng);
  std::vector<float> orig = x;
  fp4_simulate(x.data(), 128, 32);
  for (int b = 0; b < 4; ++b) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::fmax(amax, std::fabs(orig[static_cast<size_t>(b * 32 + i)]));
    const float s = std::exp2(std::ceil(std::log2(static_cast<double>(amax * (1.0f / 6.0f)))));
    for (int i = 0; i < 32; ++i) {
      const float v = x[static_cast<size_t>(b * 32 + i)];
      EXPECT_EQ(v, round_bf16(v));
      EXPECT_EQ(e2m1_to_f32(f32_to_e2m1(v / s)) * s, v);  // on the grid
      EXPECT_LE(std::fabs(v - orig[static_cast<size_t>(b * 32 + i)]), s) << b << " " << i;  // within a step
    }
  }
}

TEST(Hadamard, BasisVectorsAndOrthogonality) {
  const int n = 8;
  const float inv = static_cast<float>(1.0 / std::sqrt(8.0));
  for (int k = 0; k < n; ++k) {
    std::vector<float> e(n, 0.0f);
    e[static_cast<size_t>(k)] = 1.0f;
    hadamard_rotate(e.data(), n);
    for (int j = 0; j < n; ++j) {
      // H[k][j] = (-1)^popcount(k & j) in Sylvester order.
      const float sign = (__builtin_popcount(static_cast<unsigned>(k & j)) & 1) ? -1.0f : 1.0f;
      EXPECT_EQ(e[static_cast<size_t>(j)], sign * inv) << k << "," << j;
    }
  }
  std::mt19937 rng(11);
  std::normal_distribution<float> nd;
  std::vector<float> x(128);
  for (float& v : x) v = nd(rng);
  std::vector<float> y = x;
  hadamard_rotate(y.data(), 128);
  double nx = 0, ny = 0;
  for (int i = 0; i < 128; ++i) {
    nx += double(x[static_cast<size_t>(i)]) * x[static_cast<size_t>(i)];
    ny += double(y[static_cast<size_t>(i)]) * y[static_cast<size_t>(i)];
  }
  EXPECT_NEAR(nx, ny, 1e-5 * nx);
  hadamard_rotate(y.data(), 128);  // H / sqrt(n) is symmetric and orthogonal: its own inverse
  for (int i = 0; i < 128; ++i) EXPECT_NEAR(y[static_cast<size_t>(i)], x[static_cast<size_t>(i)], 1e-5f);
}

TEST(ActQuant, ValuesMatchCodesTimesScales) {
  // Magnitudes from deep in the E4M3 subnormals to saturation, exact ties included (values
  // halfway between two grid points of a block with scale 1).
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> mant(1.0f, 2.0f);
  std::uniform_int_distribution<int> expo(-14, 9);
  for (int rep = 0; rep < 200; ++rep) {
    std::vector<float> x(384);
    for (float& v : x) v = std::ldexp(mant(rng), expo(rng)) * ((rng() & 1) ? -1.0f : 1.0f);
    x[5] = 448.0f;  // block 0 has scale 1: the next values sit on ties of the E4M3 grid
    x[6] = 1.0625f;
    x[7] = -0.0029296875f;  // 1.5 * 2^-9
    x[8] = 0.0f;
    x[9] = -0.0f;
    std::vector<uint8_t> codes(x.size());
    std::vector<float> scales(3), scales2(3), values(x.size());
    act_quant_fp8(x.data(), 384, 128, codes.data(), scales.data());
    act_quant_fp8_values(x.data(), 384, 128, values.data(), scales2.data());
    for (size_t i = 0; i < x.size(); ++i) {
      const float want = e4m3_to_f32(codes[i]) * scales[i / 128];
      ASSERT_EQ(std::bit_cast<uint32_t>(values[i]), std::bit_cast<uint32_t>(want)) << i << " x=" << x[i];
    }
    EXPECT_EQ(scales, scales2);
  }
}

}  // namespace
}  // namespace dsv4
