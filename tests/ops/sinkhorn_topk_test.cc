#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "ops/sinkhorn.h"
#include "ops/topk.h"

namespace dsv4 {
namespace {

TEST(Sinkhorn, RowsAndColumnsSumToOne) {
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  std::vector<float> m(16);
  for (float& v : m) v = nd(rng);
  sinkhorn_project(m.data(), 4, 20, 1e-6f);
  for (int j = 0; j < 4; ++j) {
    double row = 0, col = 0;
    for (int k = 0; k < 4; ++k) {
      row += m[static_cast<size_t>(j * 4 + k)];
      col += m[static_cast<size_t>(k * 4 + j)];
      EXPECT_GT(m[static_cast<size_t>(j * 4 + k)], 0.0f);
    }
    EXPECT_NEAR(col, 1.0, 1e-5);  // the last normalisation is over columns
    EXPECT_NEAR(row, 1.0, 1e-3);
  }
}

TEST(Sinkhorn, OneIterationIsSoftmaxThenColumns) {
  // iters = 1: row softmax + eps, then one column normalisation.
  std::vector<float> m = {0.0f, 0.0f, std::log(3.0f), 0.0f};
  sinkhorn_project(m.data(), 2, 1, 0.0f);
  // Softmax rows: [0.5, 0.5], [0.75, 0.25]; column sums 1.25, 0.75.
  EXPECT_NEAR(m[0], 0.5 / 1.25, 1e-7);
  EXPECT_NEAR(m[1], 0.5 / 0.75, 1e-7);
  EXPECT_NEAR(m[2], 0.75 / 1.25, 1e-7);
  EXPECT_NEAR(m[3], 0.25 / 0.75, 1e-7);
  // A uniform matrix stays uniform: 1/n per entry (up to eps).
  std::vector<float> u(9, 0.7f);
  sinkhorn_project(u.data(), 3, 20, 1e-6f);
  for (float v : u) EXPECT_NEAR(v, 1.0f / 3.0f, 1e-5f);
}

TEST(Sinkhorn, EpsEntersTheDenominators) {
  std::vector<float> a = {0.0f, 0.0f, std::log(3.0f), 0.0f};
  std::vector<float> b = a;
  sinkhorn_project(a.data(), 2, 3, 0.0f);
  sinkhorn_project(b.data(), 2, 3, 0.01f);
  EXPECT_GT(std::fabs(a[0] - b[0]), 1e-4f);
}

TEST(TopK, DescendingWithTiesToLowerIndex) {
  const std::vector<float> s = {1.0f, 3.0f, 2.0f, 3.0f, 2.0f, -1.0f};
  std::vector<int64_t> out(6, -7);
  ASSERT_EQ(topk_indices(s.data(), 6, 4, out.data()), 4);
  EXPECT_EQ(out[0], 1);
  EXPECT_EQ(out[1], 3);
  EXPECT_EQ(out[2], 2);
  EXPECT_EQ(out[3], 4);
  EXPECT_EQ(out[4], -7);  // untouched beyond k
  // Tie across the boundary keeps the lower index.
  ASSERT_EQ(topk_indices(s.data(), 6, 3, out.data()), 3);
  EXPECT_EQ(out[2], 2);
}

TEST(TopK, NanLowestAndKBeyondN) {
  const std::vector<float> s = {NAN, -INFINITY, 0.0f, NAN, -0.0f};
  std::vector<int64_t> out(10, -7);
  ASSERT_EQ(topk_indices(s.data(), 5, 10, out.data()), 5);
  EXPECT_EQ(out[0], 2);  // 0 and -0 tie: lower index first
  EXPECT_EQ(out[1], 4);
  EXPECT_EQ(out[2], 1);
  EXPECT_EQ(out[3], 0);
  EXPECT_EQ(out[4], 3);
  EXPECT_EQ(out[5], -7);
  EXPECT_EQ(topk_indices(s.data(), 5, 0, out.data()), 0);
}

TEST(TopK, MatchesFullSortOnRandomTies) {
  std::mt19937 rng(2);
  std::vector<float> s(1000);
  for (float& v : s) v = static_cast<float>(rng() % 50);  // many ties
  std::vector<int64_t> out(100);
  ASSERT_EQ(topk_indices(s.data(), 1000, 100, out.data()), 100);
  for (int i = 1; i < 100; ++i) {
    const float a = s[static_cast<size_t>(out[static_cast<size_t>(i - 1)])];
    const float b = s[static_cast<size_t>(out[static_cast<size_t>(i)])];
    ASSERT_TRUE(a > b || (a == b && out[static_cast<size_t>(i - 1)] < out[static_cast<size_t>(i)])) << i;
  }
  // Everything not selected scores at most the last selected one (and if equal, has a larger index).
  std::vector<bool> chosen(1000, false);
  for (int64_t i : out) chosen[static_cast<size_t>(i)] = true;
  const float last = s[static_cast<size_t>(out[99])];
  for (int i = 0; i < 1000; ++i) {
    if (chosen[static_cast<size_t>(i)]) continue;
    ASSERT_TRUE(s[static_cast<size_t>(i)] < last || (s[static_cast<size_t>(i)] == last && i > out[99])) << i;
  }
}

}  // namespace
}  // namespace dsv4
