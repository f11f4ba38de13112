#include "ops/norm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "ops/formats.h"

namespace dsv4 {
namespace {

TEST(RmsNorm, HandValues) {
  // mean(x^2) = (9 + 16) / 2 = 12.5 for [3, -4]; with eps 0: y = x / sqrt(12.5).
  const std::vector<float> x = {3.0f, -4.0f, 1.0f, 1.0f};
  std::vector<float> y(4);
  rms_norm(x.data(), 2, 2, nullptr, 0.0, y.data(), Numerics::kPrecise);
  const float inv = static_cast<float>(1.0 / std::sqrt(12.5));
  EXPECT_EQ(y[0], 3.0f * inv);
  EXPECT_EQ(y[1], -4.0f * inv);
  EXPECT_EQ(y[2], 1.0f);
  EXPECT_EQ(y[3], 1.0f);
  // Weighted: w = [2, 0.5] as BF16.
  const uint16_t w[2] = {f32_to_bf16(2.0f), f32_to_bf16(0.5f)};
  rms_norm(x.data(), 1, 2, w, 0.0, y.data(), Numerics::kPrecise);
  EXPECT_EQ(y[0], 2.0f * (3.0f * inv));
  EXPECT_EQ(y[1], 0.5f * (-4.0f * inv));
}

TEST(RmsNorm, EpsAndReferenceRounding) {
  // x = [1e-3, 1e-3]: mean 1e-6; with eps 1e-6 the rsqrt is of 2e-6.
  const std::vector<float> x = {1e-3f, 1e-3f};
  std::vector<float> y(2);
  rms_norm(x.data(), 1, 2, nullptr, 1e-6, y.data(), Numerics::kPrecise);
  EXPECT_NEAR(y[0], 1e-3 / std::sqrt(2e-6), 1e-6);
  const std::vector<float> x2 = {0.3f, 0.7f, -1.1f};
  std::vector<float> yp(3), yr(3);
  rms_norm(x2.data(), 1, 3, nullptr, 1e-6, yp.data(), Numerics::kPrecise);
  rms_norm(x2.data(), 1, 3, nullptr, 1e-6, yr.data(), Numerics::kReference);
  bool any_diff = false;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(yr[static_cast<size_t>(i)], round_bf16(yp[static_cast<size_t>(i)]));
    any_diff |= yr[static_cast<size_t>(i)] != yp[static_cast<size_t>(i)];
  }
  EXPECT_TRUE(any_diff);
}

TEST(RmsNorm, InPlace) {
  std::vector<float> x = {3.0f, -4.0f};
  rms_norm(x.data(), 1, 2, nullptr, 0.0, x.data(), Numerics::kPrecise);
  EXPECT_EQ(x[0], 3.0f * static_cast<float>(1.0 / std::sqrt(12.5)));
}

}  // namespace
}  // namespace dsv4
