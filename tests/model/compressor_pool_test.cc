// The compressor's pooled entry (spec 3.4, before post-processing) against the official
// pooling `(kv * score.softmax(dim)).sum(dim)` as torch 1.13's CPU kernels compute it
// (tests/data/compressor/make_pool_vectors.py), bit for bit, for windows of 8 to 256 rows.
// tiny-a's golden entries cannot catch a wrong summation order: its windows have <= 16 rows,
// where torch's cascade sum and a running sum agree; HCA's 128-row windows are where they part.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <algorithm>
#include <string>
#include <vector>

#include "model/compressor.h"
#include "model/safetensors.h"
#include "model/state.h"

using namespace dsv4;

namespace {

const TensorStore& vectors() {
  static TensorStore s = TensorStore::open_file(std::string(DSV4_TEST_DATA_DIR) + "/compressor/pool_vectors.safetensors");
  return s;
}

struct Case {
  int64_t rows, d;
};

class CompressorPool : public ::testing::TestWithParam<Case> {};

TEST_P(CompressorPool, MatchesOfficialPoolingBitForBit) {
  const Case c = GetParam();
  const std::string p = "r" + std::to_string(c.rows) + ".";
  std::vector<float> kv = vectors().read_f32(p + "kv"), score = vectors().read_f32(p + "score"),
                     want = vectors().read_f32(p + "pooled");
  ASSERT_EQ(static_cast<int64_t>(kv.size()), c.rows * c.d);
  CompressorState cs;
  cs.init(c.rows, c.d, /*overlap=*/false, /*horizon=*/0, KvFormat::kF32, /*rope_dim=*/0, /*max_pos=*/c.rows);
  std::memcpy(cs.a.data(), kv.data(), kv.size() * sizeof(float));
  std::memcpy(cs.z.data(), score.data(), score.size() * sizeof(float));
  std::vector<float> got(static_cast<size_t>(c.d));
  compressor_pool(cs, c.rows - 1, got.data());
  int64_t differing = 0;
  for (int64_t ch = 0; ch < c.d; ++ch) differing += std::memcmp(&got[ch], &want[ch], sizeof(float)) != 0;
  EXPECT_EQ(differing, 0) << c.rows << "-row window: channels differing from torch's pooling";
}

INSTANTIATE_TEST_SUITE_P(Windows, CompressorPool,
                         ::testing::Values(Case{8, 64}, Case{16, 64}, Case{17, 64}, Case{64, 128}, Case{128, 128},
                                           Case{256, 64}),
                         [](const ::testing::TestParamInfo<Case>& i) {
                           return "rows" + std::to_string(i.param.rows) + "_d" + std::to_string(i.param.d);
                         });

// The vectors discriminate: a running FP32 sum of the same products misses torch's bits on the
// 128-row window (so the test above fails if the summation order regresses).
TEST(WindowSum, RunningSumDiffersFromOfficialOrderOnLongWindows) {
  const int64_t rows = 128, d = 128;
  std::vector<float> kv = vectors().read_f32("r128.kv"), score = vectors().read_f32("r128.score"),
                     want = vectors().read_f32("r128.pooled");
  int64_t running_differs = 0;
  std::vector<float> prod(static_cast<size_t>(rows));
  for (int64_t ch = 0; ch < d; ++ch) {
    double m = -INFINITY, sum = 0;
    for (int64_t r = 0; r < rows; ++r) m = std::max(m, static_cast<double>(score[r * d + ch]));
    for (int64_t r = 0; r < rows; ++r) sum += std::exp(static_cast<double>(score[r * d + ch]) - m);
    float running = 0.0f;
    for (int64_t r = 0; r < rows; ++r) {
      float w = static_cast<float>(std::exp(static_cast<double>(score[r * d + ch]) - m) / sum);
      prod[r] = w * kv[r * d + ch];
      running += prod[r];
    }
    running_differs += running != want[ch];
    EXPECT_EQ(window_sum_f32(prod.data(), rows), want[ch]) << "channel " << ch;
  }
  EXPECT_GT(running_differs, 0);
}

TEST(WindowSum, ShortWindowsAreARunningSum) {
  std::vector<float> v(16);
  for (int i = 0; i < 16; ++i) v[i] = 0.1f * static_cast<float>(i + 1) + 1e-7f;
  float running = 0.0f;
  for (float x : v) running += x;
  EXPECT_EQ(running, window_sum_f32(v.data(), 16));
}

}  // namespace
