#include "ops/rope.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "ops/formats.h"

namespace dsv4 {
namespace {

RopeParams compressed_params() {  // the V4 compressed-layer setting (spec 3.0.6)
  RopeParams p;
  p.rope_dim = 64;
  p.theta = 160000.0;
  p.yarn = true;
  p.factor = 16.0;
  p.original_seq_len = 65536;
  p.beta_fast = 32.0;
  p.beta_slow = 1.0;
  return p;
}

TEST(Rope, PlainFrequencies) {
  RopeParams p;
  p.theta = 10000.0;
  const RopeTable t = make_rope_table(p);
  ASSERT_EQ(t.freqs.size(), 32u);
  EXPECT_EQ(t.freqs[0], 1.0f);
  for (int i = 0; i < 32; ++i) {
    EXPECT_NEAR(t.freqs[static_cast<size_t>(i)], std::pow(10000.0, -2.0 * i / 64.0), 1e-7 * std::pow(10000.0, -2.0 * i / 64.0)) << i;
  }
  EXPECT_EQ(t.freqs[16], 0.01f);  // 10000^-0.5, exactly as the FP32 1 / 100
  EXPECT_EQ(t.yarn_low, 0);
  EXPECT_EQ(t.yarn_high, 0);
}

TEST(Rope, YarnBand) {
  const RopeTable t = make_rope_table(compressed_params());
  EXPECT_EQ(t.yarn_low, 15);
  EXPECT_EQ(t.yarn_high, 25);
  RopeParams plain = compressed_params();
  plain.yarn = false;
  const RopeTable base = make_rope_table(plain);
  for (int i = 0; i <= 15; ++i) EXPECT_EQ(t.freqs[static_cast<size_t>(i)], base.freqs[static_cast<size_t>(i)]) << i;
  for (int i = 25; i < 32; ++i) EXPECT_EQ(t.freqs[static_cast<size_t>(i)], base.freqs[static_cast<size_t>(i)] / 16.0f) << i;
  // In between: a linear blend, ramp (i - 15) / 10.
  for (int i = 16; i < 25; ++i) {
    const double ramp = (i - 15) / 10.0;
    const double f = base.freqs[static_cast<size_t>(i)];
    EXPECT_NEAR(t.freqs[static_cast<size_t>(i)], f / 16 * ramp + f * (1 - ramp), 1e-6 * f) << i;
    EXPECT_LT(t.freqs[static_cast<size_t>(i)], base.freqs[static_cast<size_t>(i)]);
  }
}

TEST(Rope, RotatesAdjacentPairs) {
  RopeParams p;
  p.rope_dim = 4;
  p.theta = 10000.0;
  const RopeTable t = make_rope_table(p);  // freqs 1, 0.01
  std::vector<float> x = {1.0f, 0.0f, 0.0f, 2.0f};
  apply_rope(x.data(), 3, t, false, Numerics::kPrecise);
  EXPECT_FLOAT_EQ(x[0], static_cast<float>(std::cos(3.0)));
  EXPECT_FLOAT_EQ(x[1], static_cast<float>(std::sin(3.0)));
  EXPECT_FLOAT_EQ(x[2], static_cast<float>(-2.0 * std::sin(0.03f)));
  EXPECT_FLOAT_EQ(x[3], static_cast<float>(2.0 * std::cos(0.03f)));
  std::vector<float> y = {1.0f, 0.0f, 0.0f, 2.0f};
  apply_rope(y.data(), 3, t, true, Numerics::kPrecise);  // inverse: angle -3
  EXPECT_FLOAT_EQ(y[1], static_cast<float>(-std::sin(3.0)));
  // Position 0 is the identity.
  std::vector<float> z = {0.3f, -0.7f, 1.5f, 2.5f};
  apply_rope(z.data(), 0, t, false, Numerics::kPrecise);
  EXPECT_EQ(z, (std::vector<float>{0.3f, -0.7f, 1.5f, 2.5f}));
}

TEST(Rope, AngleIsFp32Product) {
  // At a large position the FP32 angle pos * w differs from the exact one; the reference
  // uses the FP32 product.
  RopeParams p;
  p.rope_dim = 2;
  const RopeTable t = make_rope_table(p);  // freq 1
  RopeParams q;
  q.rope_dim = 64;
  q.theta = 10000.0;
  const RopeTable t64 = make_rope_table(q);
  const int64_t pos = 1000003;
  std::vector<float> x(64, 0.0f);
  x[2 * 7] = 1.0f;
  apply_rope(x.data(), pos, t64, false, Numerics::kPrecise);
  const float angle = static_cast<float>(pos) * t64.freqs[7];
  EXPECT_EQ(x[2 * 7], static_cast<float>(std::cos(static_cast<double>(angle))));
  EXPECT_EQ(x[2 * 7 + 1], static_cast<float>(std::sin(static_cast<double>(angle))));
  (void)t;
}

TEST(Rope, InverseUndoesForwardInPreciseMode) {
  const RopeTable t = make_rope_table(compressed_params());
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  std::vector<float> x(64);
  for (float& v : x) v = nd(rng);
  std::vector<float> y = x;
  apply_rope(y.data(), 12345, t, false, Numerics::kPrecise);
  double moved = 0;
  for (int i = 0; i < 64; ++i) moved += std::fabs(y[static_cast<size_t>(i)] - x[static_cast<size_t>(i)]);
  EXPECT_GT(moved, 1.0);
  apply_rope(y.data(), 12345, t, true, Numerics::kPrecise);
  for (int i = 0; i < 64; ++i) EXPECT_NEAR(y[static_cast<size_t>(i)], x[static_cast<size_t>(i)], 1e-5f) << i;
}

TEST(Rope, ReferenceRoundsToBf16) {
  const RopeTable t = make_rope_table(compressed_params());
  std::mt19937 rng(9);
  std::normal_distribution<float> nd;
  std::vector<float> x(64);
  for (float& v : x) v = round_bf16(nd(rng));
  std::vector<float> precise = x;
  std::vector<float> ref = x;
  apply_rope(precise.data(), 77, t, false, Numerics::kPrecise);
  apply_rope(ref.data(), 77, t, false, Numerics::kReference);
  int differ = 0;
  for (int i = 0; i < 64; ++i) {
    EXPECT_EQ(ref[static_cast<size_t>(i)], round_bf16(precise[static_cast<size_t>(i)]));
    differ += ref[static_cast<size_t>(i)] != precise[static_cast<size_t>(i)];
  }
  EXPECT_GT(differ, 0);
}

TEST(Rope, HeadsOfOnePositionTakeTheOneVectorFormula) {
  // Every head of apply_rope_heads against the formula element by element (FP32 angle, cos /
  // sin in double rounded once, FP32 complex product, BF16 in reference mode), also with more
  // pairs than one chunk of shared angles (80), inverse and forward; the gaps between the
  // heads' rotated parts stay untouched.
  for (int64_t rope_dim : {int64_t{64}, int64_t{160}}) {
    RopeParams p = compressed_params();
    p.rope_dim = rope_dim;
    const RopeTable t = make_rope_table(p);
    for (Numerics nm : {Numerics::kPrecise, Numerics::kReference}) {
      for (bool inverse : {false, true}) {
        const int64_t heads = 5, stride = rope_dim + 3, pos = 4097;
        std::mt19937 rng(static_cast<uint32_t>(rope_dim + inverse));
        std::normal_distribution<float> nd;
        std::vector<float> x(static_cast<size_t>(heads * stride));
        for (float& v : x) v = nd(rng);
        std::vector<float> y = x;
        apply_rope_heads(y.data(), heads, stride, pos, t, inverse, nm);
        for (int64_t h = 0; h < heads; ++h) {
          for (int64_t i = 0; i < rope_dim / 2; ++i) {
            const float angle = static_cast<float>(pos) * t.freqs[static_cast<size_t>(i)];
            const float c = static_cast<float>(std::cos(static_cast<double>(angle)));
            float s = static_cast<float>(std::sin(static_cast<double>(angle)));
            if (inverse) s = -s;
            const float a = x[static_cast<size_t>(h * stride + 2 * i)],
                        b = x[static_cast<size_t>(h * stride + 2 * i + 1)];
            const float ac = a * c, bs = b * s, as = a * s, bc = b * c;
            float re = ac - bs, im = as + bc;
            if (nm == Numerics::kReference) {
              re = round_bf16(re);
              im = round_bf16(im);
            }
            ASSERT_EQ(y[static_cast<size_t>(h * stride + 2 * i)], re) << rope_dim << " head " << h << " pair " << i;
            ASSERT_EQ(y[static_cast<size_t>(h * stride + 2 * i + 1)], im) << rope_dim << " head " << h << " pair " << i;
          }
          for (int64_t k = rope_dim; k < stride; ++k)
            ASSERT_EQ(y[static_cast<size_t>(h * stride + k)], x[static_cast<size_t>(h * stride + k)]);
        }
      }
    }
  }
}

}  // namespace
}  // namespace dsv4
