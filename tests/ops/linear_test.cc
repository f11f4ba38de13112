#include "ops/linear.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "ops/formats.h"
#include "test_weights.h"

namespace dsv4 {
namespace {

// Element (r, c) of the weight, decoded independently of dequantize_rows.
double weight_at(const Stored& s, int64_t r, int64_t c) {
  const WeightMatrix& w = s.w;
  const int64_t row = w.row_begin + r;
  switch (w.format) {
    case WeightFormat::kFp8Block:
      return double(e4m3_to_f32(s.data[static_cast<size_t>(row * w.cols + c)])) *
             std::ldexp(1.0, s.scale[static_cast<size_t>((row / 128) * ((w.cols + 127) / 128) + c / 128)] - 127);
    case WeightFormat::kFp4: {
      const uint8_t byte = s.data[static_cast<size_t>(row * w.cols / 2 + c / 2)];
      return double(e2m1_to_f32((c % 2 == 0) ? (byte & 0xF) : (byte >> 4))) *
             std::ldexp(1.0, s.scale[static_cast<size_t>(row * w.cols / 32 + c / 32)] - 127);
    }
    case WeightFormat::kBf16: {
      uint16_t b;
      std::memcpy(&b, s.data.data() + 2 * (row * w.cols + c), 2);
      return bf16_to_f32(b);
    }
    case WeightFormat::kF32: {
      float f;
      std::memcpy(&f, s.data.data() + 4 * (row * w.cols + c), 4);
      return f;
    }
  }
  return 0;
}

// act_quant written out: scale 2^ceil(log2(max(amax, 1e-4) * fl32(1/448))), codes e4m3(x / s).
void act_quant_naive(const float* x, int64_t n, std::vector<double>& q, std::vector<double>& s) {
  q.assign(static_cast<size_t>(n), 0.0);
  s.assign(static_cast<size_t>((n + 127) / 128), 0.0);
  for (int64_t b = 0; b * 128 < n; ++b) {
    float amax = 0;
    for (int64_t k = b * 128; k < std::min(n, b * 128 + 128); ++k) amax = std::max(amax, std::fabs(x[k]));
    const float v = std::max(amax, 1e-4f) * (1.0f / 448.0f);
    int e;
    const double frac = std::frexp(static_cast<double>(v), &e);  // v = frac * 2^e, frac in [0.5, 1)
    const double scale = frac == 0.5 ? std::ldexp(1.0, e - 1) : std::ldexp(1.0, e);
    s[static_cast<size_t>(b)] = scale;
    for (int64_t k = b * 128; k < std::min(n, b * 128 + 128); ++k) {
      const float r = static_cast<float>(x[k] / scale);
      q[static_cast<size_t>(k)] = e4m3_to_f32(f32_to_e4m3(std::clamp(r, -448.0f, 448.0f)));
    }
  }
}

// Reference-mode FP8 / FP4 product: per K block (128 resp. 32) the exact sum of code
// products, times both scales, accumulated in double; BF16 out.
float block_scaled_expected(const Stored& s, const float* x, int64_t r) {
  const WeightMatrix& w = s.w;
  std::vector<double> q, sa;
  act_quant_naive(x, w.cols, q, sa);
  const int64_t kb = w.format == WeightFormat::kFp4 ? 32 : 128;
  double acc = 0;
  for (int64_t k0 = 0; k0 < w.cols; k0 += kb) {
    double partial = 0;  // over codes only
    double sw = 0;
    for (int64_t k = k0; k < std::min(w.cols, k0 + kb); ++k) {
      const int64_t row = w.row_begin + r;
      double code;
      if (w.format == WeightFormat::kFp4) {
        const uint8_t byte = s.data[static_cast<size_t>(row * w.cols / 2 + k / 2)];
        code = e2m1_to_f32((k % 2 == 0) ? (byte & 0xF) : (byte >> 4));
        sw = std::ldexp(1.0, s.scale[static_cast<size_t>(row * w.cols / 32 + k / 32)] - 127);
      } else {
        code = e4m3_to_f32(s.data[static_cast<size_t>(row * w.cols + k)]);
        sw = std::ldexp(1.0, s.scale[static_cast<size_t>((row / 128) * ((w.cols + 127) / 128) + k / 128)] - 127);
      }
      partial += q[static_cast<size_t>(k)] * code;
    }
    acc += partial * sa[static_cast<size_t>(k0 / 128)] * sw;
  }
  return round_bf16(static_cast<float>(acc));
}

// Plain product: sum of (optionally BF16-rounded) x times the decoded weight in double.
float plain_expected(const Stored& s, const float* x, int64_t r, bool bf16_in, bool bf16_out) {
  double acc = 0;
  for (int64_t k = 0; k < s.w.cols; ++k) {
    const double xv = bf16_in ? round_bf16(x[k]) : x[k];
    acc += xv * weight_at(s, r, k);
  }
  const float f = static_cast<float>(acc);
  return bf16_out ? round_bf16(f) : f;
}

struct Case {
  int64_t n, ldx, ldy;
};

// Runs linear with padded strides and checks every output and that the padding is untouched.
// Exact comparison, except with `fp32_sums` (precise mode accumulates in FP32 lanes): then
// |got - want| <= cols * 2^-24 * sum |x_k w_k|, the classic bound of a float sum of cols terms.
template <typename Expected>
void check(const Stored& s, Numerics numerics, LinearCompute compute, bool bf16_inputs, Expected expected,
           int64_t* differ_from_precise = nullptr, bool fp32_sums = false) {
  std::mt19937 rng(42);
  const Case c{5, s.w.cols + 3, s.w.rows + 5};
  const std::vector<float> x = make_x(c.n, c.ldx, s.w.cols, rng, bf16_inputs);
  std::vector<float> y(static_cast<size_t>(c.n * c.ldy), -777.0f);
  linear(s.w, x.data(), c.ldx, c.n, y.data(), c.ldy, numerics, compute);
  std::vector<float> yp(static_cast<size_t>(c.n * c.ldy), -777.0f);
  linear(s.w, x.data(), c.ldx, c.n, yp.data(), c.ldy, Numerics::kPrecise);
  int64_t bad = 0;
  for (int64_t t = 0; t < c.n; ++t) {
    for (int64_t r = 0; r < s.w.rows; ++r) {
      const float want = expected(x.data() + t * c.ldx, r);
      const float got = y[static_cast<size_t>(t * c.ldy + r)];
      double tolerance = 0;
      if (fp32_sums) {
        for (int64_t k = 0; k < s.w.cols; ++k) tolerance += std::fabs(x[static_cast<size_t>(t * c.ldx + k)] * weight_at(s, r, k));
        tolerance *= static_cast<double>(s.w.cols) * std::ldexp(1.0, -24);
      }
      const bool ok = fp32_sums ? std::fabs(double(got) - want) <= tolerance : got == want;
      if (!ok && bad++ < 5) ADD_FAILURE() << "t=" << t << " r=" << r << " got " << got << " want " << want;
      if (differ_from_precise) *differ_from_precise += got != yp[static_cast<size_t>(t * c.ldy + r)];
    }
    for (int64_t r = s.w.rows; r < c.ldy; ++r) ASSERT_EQ(y[static_cast<size_t>(t * c.ldy + r)], -777.0f);
  }
  EXPECT_EQ(bad, 0);
  // Batch invariance: each token alone gives the same bits.
  for (int64_t t = 0; t < c.n; ++t) {
    std::vector<float> one(static_cast<size_t>(s.w.rows));
    linear(s.w, x.data() + t * c.ldx, c.ldx, 1, one.data(), s.w.rows, numerics, compute);
    for (int64_t r = 0; r < s.w.rows; ++r) ASSERT_EQ(one[static_cast<size_t>(r)], y[static_cast<size_t>(t * c.ldy + r)]);
  }
}

TEST(Linear, Fp8ReferenceIsActQuantThenBlockSums) {
  std::mt19937 rng(1);
  Stored s = make_fp8(192, 256, rng);
  int64_t differ = 0;
  check(s, Numerics::kReference, LinearCompute::kNative, true,
        [&](const float* x, int64_t r) { return block_scaled_expected(s, x, r); }, &differ);
  EXPECT_GT(differ, 100);  // the FP8 activation quantisation is visible
  // A row slice that straddles the 128-row scale boundary.
  Stored slice = s;
  slice.w = s.w.row_slice(100, 60);
  check(slice, Numerics::kReference, LinearCompute::kNative, true,
        [&](const float* x, int64_t r) { return block_scaled_expected(slice, x, r); });
}

TEST(Linear, Fp8ReferencePartialBlocks) {
  // 130 x 192: the last row block and the last column block are partial (scale tensor 2 x 2).
  std::mt19937 rng(7);
  Stored s = make_fp8(130, 192, rng);
  check(s, Numerics::kReference, LinearCompute::kNative, true,
        [&](const float* x, int64_t r) { return block_scaled_expected(s, x, r); });
}

TEST(Linear, Fp4ReferenceIsFp8ActTimesFp4Blocks) {
  std::mt19937 rng(2);
  Stored s = make_fp4(64, 256, rng);
  int64_t differ = 0;
  check(s, Numerics::kReference, LinearCompute::kNative, true,
        [&](const float* x, int64_t r) { return block_scaled_expected(s, x, r); }, &differ);
  EXPECT_GT(differ, 50);
  Stored slice = s;
  slice.w = s.w.row_slice(7, 20);
  check(slice, Numerics::kReference, LinearCompute::kNative, true,
        [&](const float* x, int64_t r) { return block_scaled_expected(slice, x, r); });
}

TEST(Linear, Bf16NativeRoundsInputsAndOutput) {
  std::mt19937 rng(3);
  Stored s = make_bf16(48, 200, rng);
  check(s, Numerics::kReference, LinearCompute::kNative, false,
        [&](const float* x, int64_t r) { return plain_expected(s, x, r, true, true); });
}

TEST(Linear, Fp32ComputeKeepsInputsAndFp32Output) {
  std::mt19937 rng(4);
  Stored s = make_bf16(48, 200, rng);
  int64_t differ = 0;
  check(s, Numerics::kReference, LinearCompute::kFp32, false,
        [&](const float* x, int64_t r) { return plain_expected(s, x, r, false, false); }, &differ);
  // Precise mode computes the same product but sums in FP32 lanes, so some outputs differ by
  // FP32 rounding (PreciseUsesExactWeightsAndFp32 bounds it).
  EXPECT_LT(differ, 48 * 5);
  // F32 weights in kNative: the FP32 product.
  std::vector<float> wf(static_cast<size_t>(30 * 200));
  std::normal_distribution<float> nd;
  for (float& v : wf) v = nd(rng);
  Stored f;
  f.data.resize(wf.size() * 4);
  std::memcpy(f.data.data(), wf.data(), f.data.size());
  f.w.format = WeightFormat::kF32;
  f.w.data = f.data.data();
  f.w.rows = f.w.total_rows = 30;
  f.w.cols = 200;
  check(f, Numerics::kReference, LinearCompute::kNative, false,
        [&](const float* x, int64_t r) { return plain_expected(f, x, r, false, false); });
}

TEST(Linear, Bf16ComputeOnDequantisedFp8) {
  // The wo_a product: FP8 weights dequantised (exact in BF16), BF16 inputs, BF16 output.
  std::mt19937 rng(5);
  Stored s = make_fp8(128, 384, rng);
  int64_t differ = 0;
  check(s, Numerics::kReference, LinearCompute::kBf16, false,
        [&](const float* x, int64_t r) { return plain_expected(s, x, r, true, true); }, &differ);
  EXPECT_GT(differ, 100);
}

TEST(Linear, PreciseUsesExactWeightsAndFp32) {
  std::mt19937 rng(6);
  Stored s8 = make_fp8(192, 256, rng);
  check(s8, Numerics::kPrecise, LinearCompute::kNative, false,
        [&](const float* x, int64_t r) { return plain_expected(s8, x, r, false, false); }, nullptr, true);
  Stored s4 = make_fp4(64, 128, rng);
  check(s4, Numerics::kPrecise, LinearCompute::kBf16, false,  // compute is ignored in precise mode
        [&](const float* x, int64_t r) { return plain_expected(s4, x, r, false, false); }, nullptr, true);
}

}  // namespace
}  // namespace dsv4
