// The int8 mode's products (ops/int8_dot): the activation quantiser on hand-made blocks; on
// every dispatch target, linear(kInt8) on Q8_0 / MXFP4 / Q2_K / IQ2_XXS weights has the bits of the scalar
// oracle dot_reference for every token whatever the batch and thread count; and its results
// stay within the activation rounding's error bound of the exact product.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backend/thread_pool.h"
#include "ops/ggml_types.h"
#include "ops/int8_dot.h"
#include "ops/linear.h"
#include "ops/linear_kernels.h"
#include "test_weights.h"

namespace dsv4 {
namespace {

struct TargetGuard {
  ~TargetGuard() { linear_kernels::force_target(0); }
};

bool same_bits(float a, float b) {
  if (std::isnan(a) && std::isnan(b)) return true;
  uint32_t x, y;
  std::memcpy(&x, &a, 4);
  std::memcpy(&y, &b, 4);
  return x == y;
}

int32_t block_sum(const std::vector<float>& d, int64_t cols, int64_t b) {
  int32_t s;
  std::memcpy(&s, &d[static_cast<size_t>(int8_dot::padded_blocks(cols) + b)], 4);
  return s;
}

// The quantiser on hand-made blocks, on the current dispatch target.
void check_quantiser() {
  const int64_t cols = 64;
  std::vector<float> x(cols, 0.0f);
  // Block 0: max 127 -> d = 1, q = x rounded half to even.
  x[0] = 127.0f;
  x[1] = 2.5f;   // -> 2
  x[2] = 3.5f;   // -> 4
  x[3] = -2.5f;  // -> -2
  x[4] = -0.4f;  // -> 0
  x[5] = 1.5f;   // -> 2
  // Block 1: all zero -> d = 0, q = 0.
  std::vector<int8_t> q(static_cast<size_t>(int8_dot::padded_values(cols)), 99);
  std::vector<float> d(static_cast<size_t>(int8_dot::scale_words(cols)), 99.0f);
  int8_dot::quantize_activations(x.data(), cols, q.data(), d.data());
  EXPECT_EQ(d[0], 1.0f);
  EXPECT_EQ(q[0], 127);
  EXPECT_EQ(q[1], 2);
  EXPECT_EQ(q[2], 4);
  EXPECT_EQ(q[3], -2);
  EXPECT_EQ(q[4], 0);
  EXPECT_EQ(q[5], 2);
  EXPECT_EQ(block_sum(d, cols, 0), 127 + 2 + 4 - 2 + 2);
  // The 16-value half sums (Q2_K's mins): int16 pairs after the block sums.
  const int64_t padded = int8_dot::padded_blocks(cols);
  int16_t halves[2];
  std::memcpy(halves, &d[static_cast<size_t>(2 * padded)], 4);
  EXPECT_EQ(halves[0], 127 + 2 + 4 - 2 + 2);
  EXPECT_EQ(halves[1], 0);
  EXPECT_EQ(d[1], 0.0f);
  for (int j = 32; j < 64; ++j) EXPECT_EQ(q[static_cast<size_t>(j)], 0);
  // Padding up to 8 blocks: zero values, scales and sums.
  for (int64_t b = 2; b < int8_dot::padded_blocks(cols); ++b) {
    EXPECT_EQ(d[static_cast<size_t>(b)], 0.0f);
    EXPECT_EQ(block_sum(d, cols, b), 0);
  }
  EXPECT_EQ(q.back(), 0);

  // A block whose maximum is negative and not a multiple: d = 3 / 127, q = round(x / d).
  std::vector<float> y(32, 0.0f);
  y[7] = -3.0f;
  y[8] = 1.0f;  // 1 / (3 / 127) = 42.33 -> 42
  y[20] = -1.5f;  // -63.5 -> -64 (second half)
  std::vector<int8_t> q2(static_cast<size_t>(int8_dot::padded_values(32)));
  std::vector<float> d2(static_cast<size_t>(int8_dot::scale_words(32)));
  int8_dot::quantize_activations(y.data(), 32, q2.data(), d2.data());
  EXPECT_EQ(d2[0], 3.0f / 127.0f);
  EXPECT_EQ(q2[7], -127);
  EXPECT_EQ(q2[8], 42);
  int16_t halves2[2];
  std::memcpy(halves2, &d2[static_cast<size_t>(2 * int8_dot::padded_blocks(32))], 4);
  EXPECT_EQ(halves2[0], -127 + 42);
  EXPECT_EQ(halves2[1], -64);

  // A non-finite value makes its block's scale NaN (so the products come out NaN, not garbage).
  y[3] = std::numeric_limits<float>::infinity();
  int8_dot::quantize_activations(y.data(), 32, q2.data(), d2.data());
  EXPECT_TRUE(std::isnan(d2[0]));
}

TEST(Int8Dot, QuantiserRoundsHalfToEvenAndScalesByTheBlockMaximumOnEveryTarget) {
  TargetGuard guard;
  for (int64_t target : linear_kernels::available_targets()) {
    linear_kernels::force_target(target);
    SCOPED_TRACE(linear_kernels::target_name(target));
    check_quantiser();
  }
}

// linear(kInt8) against dot_reference, for tokens alone and in batches, 1-3 threads, on a target.
void check_against_oracle(const Stored& s, const std::string& what) {
  const WeightMatrix& w = s.w;
  const int64_t cols = w.cols, rows = w.rows;
  std::mt19937 rng(static_cast<uint32_t>(cols * 7 + rows));
  const int64_t n = 5;
  std::vector<float> x = make_x(n, cols, cols, rng, false);
  x[3] = 0.0f;  // a few special inputs: exact zero, a large one (one block's scale)
  x[static_cast<size_t>(cols + 1)] = 1e4f;
  // The oracle: each token quantised alone, each row by the scalar code.
  std::vector<float> want(static_cast<size_t>(n * rows));
  std::vector<int8_t> q(static_cast<size_t>(int8_dot::padded_values(cols)));
  std::vector<float> d(static_cast<size_t>(int8_dot::scale_words(cols)));
  for (int64_t t = 0; t < n; ++t) {
    int8_dot::quantize_activations(x.data() + t * cols, cols, q.data(), d.data());
    for (int64_t r = 0; r < rows; ++r) want[static_cast<size_t>(t * rows + r)] = int8_dot::dot_reference(w, r, q.data(), d.data());
  }
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int64_t batch : {int64_t{1}, int64_t{2}, int64_t{3}, n}) {
      std::vector<float> got(static_cast<size_t>(n * rows), -7.0f);
      for (int64_t t0 = 0; t0 < n; t0 += batch) {
        const int64_t nt = std::min(batch, n - t0);
        linear(w, x.data() + t0 * cols, cols, nt, got.data() + t0 * rows, rows, Numerics::kInt8, LinearCompute::kNative, pool);
      }
      int64_t bad = 0, first = -1;
      for (size_t i = 0; i < got.size(); ++i) {
        if (!same_bits(got[i], want[i]) && bad++ == 0) first = static_cast<int64_t>(i);
      }
      EXPECT_EQ(bad, 0) << what << ", " << threads << " threads, batches of " << batch << ": first at " << first << ": "
                        << (first >= 0 ? got[static_cast<size_t>(first)] : 0.0f) << " vs "
                        << (first >= 0 ? want[static_cast<size_t>(first)] : 0.0f);
    }
  }
}

TEST(Int8Dot, EveryTargetHasTheOracleBitsForEveryBatchAndThreadCount) {
  TargetGuard guard;
  for (int64_t target : linear_kernels::available_targets()) {
    linear_kernels::force_target(target);
    for (GgmlType type : {GgmlType::Q8_0, GgmlType::MXFP4, GgmlType::Q2_K, GgmlType::IQ2_XXS}) {
      const bool super = type == GgmlType::Q2_K || type == GgmlType::IQ2_XXS;  // 256-value super-blocks
      // Rows not a multiple of 4 or 16; blocks per row below, at and past one group of 8.
      for (int64_t cols : {int64_t{32}, int64_t{96}, int64_t{256}, int64_t{288}, int64_t{1056}, int64_t{1280}}) {
        if (super && cols % 256 != 0) continue;
        std::mt19937 rng(static_cast<uint32_t>(cols));
        const Stored s = make_ggml(type, WeightFormat::kFp8Block, 37, cols, rng);
        check_against_oracle(s, std::string(ggml_type_name(static_cast<uint32_t>(type))) + " cols " +
                                    std::to_string(cols) + " target " + linear_kernels::target_name(target));
      }
      {
        // Enough rows that the threads claim chunks of several tiles: a decode call reads its
        // rows in 4 quarter streams of each chunk, with the rows past 4 quarters as a tail.
        std::mt19937 rng(7);
        const Stored s = make_ggml(type, WeightFormat::kFp8Block, 16 * 40 + 7, super ? 256 : 64, rng);
        check_against_oracle(s, "647 rows, target " + linear_kernels::target_name(target));
      }
      // A row view starting inside the matrix (expert slices, row-split products).
      std::mt19937 rng(5);
      const Stored s = make_ggml(type, WeightFormat::kFp4, 40, super ? 512 : 320, rng);
      Stored view = s;
      view.w = s.w.row_slice(9, 22);
      view.w.data = s.data.data();
      check_against_oracle(view, "row view, target " + linear_kernels::target_name(target));
    }
  }
}

TEST(Int8Dot, WildScalesMatchTheOracle) {
  // Random scale fields (Inf / NaN F16, every E8M0 code incl. the subnormal 0 and 1) on every target.
  TargetGuard guard;
  for (int64_t target : linear_kernels::available_targets()) {
    linear_kernels::force_target(target);
    for (GgmlType type : {GgmlType::Q8_0, GgmlType::MXFP4, GgmlType::Q2_K, GgmlType::IQ2_XXS}) {
      std::mt19937 rng(11);
      Stored s = make_ggml(type, WeightFormat::kFp8Block, 21, 512, rng);
      s.data = make_ggml_blocks(type, 21 * 512, rng, true);
      s.w.data = s.data.data();
      check_against_oracle(s, "wild " + std::string(ggml_type_name(static_cast<uint32_t>(type))) + " target " +
                                  linear_kernels::target_name(target));
    }
  }
}

TEST(Int8Dot, WithinTheActivationRoundingOfTheExactProduct) {
  // |int8 - exact| <= sum_b sum_j |w_j| * d_b / 2 (each activation moves by at most half its
  // block's step), plus FP32 rounding. A wrong scale, block or value order breaks this.
  for (GgmlType type : {GgmlType::Q8_0, GgmlType::MXFP4, GgmlType::Q2_K, GgmlType::IQ2_XXS}) {
    std::mt19937 rng(3);
    const int64_t rows = 64, cols = 1024;
    const Stored s = make_ggml(type, WeightFormat::kFp8Block, rows, cols, rng);
    const std::vector<float> x = make_x(1, cols, cols, rng, false);
    std::vector<float> got(rows), wrow(cols);
    linear(s.w, x.data(), cols, 1, got.data(), rows, Numerics::kInt8);
    for (int64_t r = 0; r < rows; ++r) {
      dequantize_rows(s.w, r, 1, wrow.data());
      double exact = 0.0, bound = 0.0, mag = 0.0;
      for (int64_t b = 0; b < cols / 32; ++b) {
        float amax = 0.0f;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[static_cast<size_t>(b * 32 + j)]));
        for (int j = 0; j < 32; ++j) {
          const size_t i = static_cast<size_t>(b * 32 + j);
          exact += static_cast<double>(wrow[i]) * x[i];
          bound += std::fabs(wrow[i]) * (amax / 127.0) / 2.0;
          mag += std::fabs(static_cast<double>(wrow[i]) * x[i]);
        }
      }
      EXPECT_LE(std::fabs(got[static_cast<size_t>(r)] - exact), bound * 1.001 + mag * 1e-6)
          << ggml_type_name(static_cast<uint32_t>(type)) << " row " << r;
      EXPECT_GT(bound, 0.0);
    }
  }
}

TEST(Int8Dot, OnlyQ8_0Mxfp4Q2_KAndIq2_XxsTakeTheInt8Path) {
  std::mt19937 rng(1);
  EXPECT_TRUE(int8_dot::supports(make_ggml(GgmlType::Q8_0, WeightFormat::kFp8Block, 4, 64, rng).w));
  EXPECT_TRUE(int8_dot::supports(make_ggml(GgmlType::MXFP4, WeightFormat::kFp4, 4, 64, rng).w));
  EXPECT_TRUE(int8_dot::supports(make_ggml(GgmlType::Q2_K, WeightFormat::kFp4, 4, 256, rng).w));
  EXPECT_TRUE(int8_dot::supports(make_ggml(GgmlType::IQ2_XXS, WeightFormat::kFp4, 4, 256, rng).w));
  EXPECT_FALSE(int8_dot::supports(make_ggml(GgmlType::IQ2_XS, WeightFormat::kFp4, 4, 256, rng).w));
  EXPECT_FALSE(int8_dot::supports(make_ggml(GgmlType::Q4_K, WeightFormat::kFp8Block, 4, 256, rng).w));
  EXPECT_FALSE(int8_dot::supports(make_bf16(4, 64, rng).w));
  // Other weights in the int8 mode: exactly the precise mode's products.
  const Stored s = make_ggml(GgmlType::Q4_K, WeightFormat::kFp8Block, 8, 256, rng);
  const std::vector<float> x = make_x(2, 256, 256, rng, false);
  std::vector<float> a(16), b(16);
  linear(s.w, x.data(), 256, 2, a.data(), 8, Numerics::kInt8);
  linear(s.w, x.data(), 256, 2, b.data(), 8, Numerics::kPrecise);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(same_bits(a[i], b[i])) << i;
}

}  // namespace
}  // namespace dsv4
