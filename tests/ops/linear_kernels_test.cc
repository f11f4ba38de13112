// The SIMD kernels of linear() on every compiled dispatch target against the exact scalar
// path (linear_reference): bit-identical in reference mode, within the FP32 summation bound in
// precise mode; and per target bit-identical whatever the token count, the token's position
// in the batch, or the thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "backend/thread_pool.h"
#include "ops/linear.h"
#include "ops/linear_kernels.h"
#include "ops/linear_reference.h"
#include "test_weights.h"

namespace dsv4 {
namespace {

// Restores the best target when a test ends.
struct TargetGuard {
  ~TargetGuard() { linear_kernels::force_target(0); }
};

struct Mode {
  Numerics numerics;
  LinearCompute compute;
  bool bf16_inputs;  // reference-mode inputs as the reference holds them
};

const Mode kModes[] = {
    {Numerics::kReference, LinearCompute::kNative, true},
    {Numerics::kReference, LinearCompute::kFp32, false},
    {Numerics::kReference, LinearCompute::kBf16, false},
    {Numerics::kPrecise, LinearCompute::kNative, false},
};

std::string describe(const Stored& s, const Mode& m, int64_t n, int threads) {
  return "format " + std::to_string(int(s.w.format)) + " [" + std::to_string(s.w.rows) + "x" +
         std::to_string(s.w.cols) + "] numerics " + std::to_string(int(m.numerics)) + " compute " +
         std::to_string(int(m.compute)) + " tokens " + std::to_string(n) + " threads " + std::to_string(threads) +
         " target " + linear_kernels::current_target_name();
}

// |x| . |W| for the precise-mode bound, from the exact dequantised weights.
std::vector<double> abs_products(const Stored& s, const std::vector<float>& x, int64_t n, int64_t ldx) {
  std::vector<float> w(static_cast<size_t>(s.w.rows * s.w.cols));
  dequantize_rows(s.w, 0, s.w.rows, w.data());
  std::vector<double> out(static_cast<size_t>(n * s.w.rows));
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t r = 0; r < s.w.rows; ++r) {
      double a = 0;
      for (int64_t k = 0; k < s.w.cols; ++k) a += std::fabs(double(x[t * ldx + k]) * w[r * s.w.cols + k]);
      out[t * s.w.rows + r] = a;
    }
  }
  return out;
}

// Checks one weight in every mode, for several token counts and 1 and 2 threads, on the
// currently forced target.
void check_all_modes(const Stored& s, ThreadPool& one, ThreadPool& two) {
  const int64_t rows = s.w.rows, cols = s.w.cols;
  for (const Mode& m : kModes) {
    std::mt19937 rng(11);
    const int64_t n_max = 19, ldx = cols + 5, ldy = rows + 3;
    const std::vector<float> x = make_x(n_max, ldx, cols, rng, m.bf16_inputs);
    std::vector<float> want(static_cast<size_t>(n_max * ldy));
    linear_reference(s.w, x.data(), ldx, n_max, want.data(), ldy, m.numerics, m.compute);
    const std::vector<double> mags = m.numerics == Numerics::kPrecise ? abs_products(s, x, n_max, ldx) : std::vector<double>();
    std::vector<float> first;  // the outputs of the first run, for the invariance checks
    for (int64_t n : {int64_t{1}, int64_t{2}, int64_t{4}, int64_t{5}, n_max}) {
      for (ThreadPool* pool : {&one, &two}) {
        SCOPED_TRACE(describe(s, m, n, pool->size()));
        std::vector<float> y(static_cast<size_t>(n * ldy), -777.0f);
        linear(s.w, x.data(), ldx, n, y.data(), ldy, m.numerics, m.compute, *pool);
        int64_t bad = 0;
        for (int64_t t = 0; t < n; ++t) {
          for (int64_t r = 0; r < rows; ++r) {
            const float got = y[t * ldy + r], ref = want[t * ldy + r];
            bool ok = got == ref;
            if (m.numerics == Numerics::kPrecise) {
              ok = std::fabs(double(got) - ref) <= double(cols) * std::ldexp(1.0, -24) * mags[t * rows + r];
            }
            if (!ok && bad++ < 3) ADD_FAILURE() << "t=" << t << " r=" << r << " got " << got << " want " << ref;
            if (first.empty()) continue;
            // Same bits as token t of the first run (1 token, 1 thread: token 0 only).
            if (t < static_cast<int64_t>(first.size()) / ldy && first[t * ldy + r] != got && bad++ < 3) {
              ADD_FAILURE() << "batch / thread variance at t=" << t << " r=" << r;
            }
          }
          for (int64_t r = rows; r < ldy; ++r) ASSERT_EQ(y[t * ldy + r], -777.0f) << "padding written";
        }
        EXPECT_EQ(bad, 0);
        if (first.empty() || y.size() > first.size()) first = y;
      }
    }
    // Each token alone, at its own position, gives the bits of the batch.
    std::vector<float> batch(static_cast<size_t>(n_max * ldy));
    linear(s.w, x.data(), ldx, n_max, batch.data(), ldy, m.numerics, m.compute, two);
    for (int64_t t = 0; t < n_max; t += 3) {
      std::vector<float> one_y(static_cast<size_t>(rows));
      linear(s.w, x.data() + t * ldx, ldx, 1, one_y.data(), rows, m.numerics, m.compute, one);
      for (int64_t r = 0; r < rows; ++r) ASSERT_EQ(one_y[r], batch[t * ldy + r]) << describe(s, m, 1, 1) << " t=" << t;
    }
  }
}

class LinearKernels : public ::testing::Test {
 protected:
  ThreadPool one_{1};
  ThreadPool two_{2};
  TargetGuard guard_;

  void for_each_target(const std::function<void()>& body) {
    const std::vector<int64_t> targets = linear_kernels::available_targets();
    ASSERT_FALSE(targets.empty());
    for (int64_t target : targets) {
      linear_kernels::force_target(target);
      ASSERT_EQ(linear_kernels::current_target_name(), linear_kernels::target_name(target));
      body();
    }
  }
};

TEST_F(LinearKernels, CompilesSeveralTargets) {
  const std::vector<int64_t> targets = linear_kernels::available_targets();
  std::string names;
  for (int64_t t : targets) names += linear_kernels::target_name(t) + " ";
  std::printf("kernel targets on this CPU: %s\n", names.c_str());
  EXPECT_GE(targets.size(), 2u);  // at least the emulated scalar target and one SIMD target
}

TEST_F(LinearKernels, Fp8OddShapes) {
  std::mt19937 rng(1);
  // 192 columns: a partial 64-column scale block; 130 rows: a partial row block and a
  // partial 16-row tile; 200 columns: a partial vector at the row end.
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{192, 256}, {130, 192}, {37, 200}, {3, 128}}) {
    Stored s = make_fp8(rows, cols, rng);
    for_each_target([&] { check_all_modes(s, one_, two_); });
  }
}

TEST_F(LinearKernels, Fp8RowSliceAcrossScaleBlock) {
  std::mt19937 rng(2);
  Stored s = make_fp8(256, 384, rng);
  Stored slice = s;
  slice.w = s.w.row_slice(100, 60);
  for_each_target([&] { check_all_modes(slice, one_, two_); });
}

TEST_F(LinearKernels, Fp4OddShapes) {
  std::mt19937 rng(3);
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{64, 256}, {70, 96}, {5, 32}, {33, 2080}}) {
    Stored s = make_fp4(rows, cols, rng);
    for_each_target([&] { check_all_modes(s, one_, two_); });
  }
  Stored s = make_fp4(80, 192, rng);
  Stored slice = s;
  slice.w = s.w.row_slice(7, 45);
  for_each_target([&] { check_all_modes(slice, one_, two_); });
}

TEST_F(LinearKernels, DecodeStreamsOfLongRangesKeepTheBits) {
  // Enough rows that a thread claims chunks of several tiles: decode then reads the 4 rows of a
  // pass from 4 quarters of its range (RowPasses), the rest as a tail of adjacent rows. FP4 and
  // MXFP4 rows with wide scale spans (every 7th) decide per pass whether whole rows sum exactly
  // in reference mode: the bits must not depend on which rows share a pass.
  std::mt19937 rng(9);
  const int64_t rows = 16 * 40 + 7;
  Stored fp8 = make_fp8(rows, 128, rng);
  Stored fp4 = make_fp4(rows, 64, rng);
  Stored mx = make_ggml(GgmlType::MXFP4, WeightFormat::kFp4, rows, 64, rng);
  Stored q8 = make_ggml(GgmlType::Q8_0, WeightFormat::kFp8Block, rows, 64, rng);
  for (int64_t r = 3; r < rows; r += 7) {
    for (int64_t b = 0; b < 2; ++b) {
      fp4.scale[static_cast<size_t>(r * 2 + b)] = static_cast<uint8_t>(b ? 140 : 120);
      mx.data[static_cast<size_t>(r * 2 * 17 + b * 17)] = static_cast<uint8_t>(b ? 140 : 120);
    }
  }
  for (const Stored* s : {&fp8, &fp4, &mx, &q8}) for_each_target([&] { check_all_modes(*s, one_, two_); });
}

TEST_F(LinearKernels, Bf16AndF32OddShapes) {
  std::mt19937 rng(4);
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{48, 200}, {17, 7}, {130, 600}}) {
    Stored b = make_bf16(rows, cols, rng);
    Stored f = make_f32(rows, cols, rng);
    for_each_target([&] {
      check_all_modes(b, one_, two_);
      check_all_modes(f, one_, two_);
    });
  }
}

TEST_F(LinearKernels, ExtremeScalesStayExact) {
  // E8M0 codes far from 127: single-multiply decoding must not overflow (codes above 134 /
  // 128 take two multiplies) and tiny scales give FP32 subnormal weights (exact, but not in
  // BF16 for FP8 codes below 3: kBf16 takes the reference path there).
  std::mt19937 rng(5);
  // FP8 code 247 and FP4 code 241 need the two-multiply decoding; the FP8 codes of that
  // block are kept below 2^-5 so that no sum overflows FP32.
  Stored s8 = make_fp8(128, 256, rng);
  s8.scale = {1, 247};
  s8.w.scale = s8.scale.data();
  for (int64_t r = 0; r < 128; ++r) {
    for (int64_t c = 128; c < 256; ++c) s8.data[static_cast<size_t>(r * 256 + c)] &= 0x8F;
  }
  Stored s4 = make_fp4(16, 64, rng);
  for (size_t i = 0; i < s4.scale.size(); ++i) s4.scale[i] = (i % 2) ? 241 : 1;
  for_each_target([&] {
    check_all_modes(s8, one_, two_);
    check_all_modes(s4, one_, two_);
  });
}

TEST_F(LinearKernels, InputsAndOutputsMayAlias) {
  std::mt19937 rng(6);
  Stored s = make_fp8(64, 128, rng);
  std::vector<float> x = make_x(3, 128, 128, rng, true);
  std::vector<float> want(3 * 64);
  linear_reference(s.w, x.data(), 128, 3, want.data(), 64, Numerics::kReference, LinearCompute::kNative);
  linear(s.w, x.data(), 128, 3, x.data(), 128, Numerics::kReference, LinearCompute::kNative, two_);
  for (int t = 0; t < 3; ++t) {
    for (int r = 0; r < 64; ++r) ASSERT_EQ(x[t * 128 + r], want[t * 64 + r]);
  }
}

TEST_F(LinearKernels, GroupGivesEachProductItsOwnBits) {
  // Experts-like group: FP4 w1 / w3 on one shared input, an FP8 and a BF16 product on
  // another, an FP4 weight with a column count the kernels do not take (reference path), and
  // one output written over the shared input of the others.
  std::mt19937 rng(12);
  Stored w1 = make_fp4(96, 256, rng), w3 = make_fp4(80, 256, rng), w8 = make_fp8(130, 192, rng);
  Stored wb = make_bf16(33, 200, rng), wodd = make_fp8(20, 64, rng);
  wodd.w.block = 64;  // FP8 with 64 x 64 scale blocks: not a kernel shape
  wodd.scale.resize(1);
  wodd.w.scale = wodd.scale.data();
  for (const Mode& m : kModes) {
    for (int64_t n : {int64_t{1}, int64_t{2}, int64_t{7}}) {
      const std::vector<float> xa = make_x(n, 256, 256, rng, m.bf16_inputs);
      const std::vector<float> xb = make_x(n, 200, 200, rng, m.bf16_inputs);
      std::vector<std::vector<float>> want(5), got(5);
      const Stored* ws[5] = {&w1, &w3, &w8, &wb, &wodd};
      const std::vector<float>* xs[5] = {&xa, &xa, &xa, &xb, &xa};
      const int64_t ldxs[5] = {256, 256, 256, 200, 256};
      for (int i = 0; i < 5; ++i) {
        want[i].assign(static_cast<size_t>(n * ws[i]->w.rows), 0.0f);
        got[i].assign(want[i].size(), -1.0f);
        linear(ws[i]->w, xs[i]->data(), ldxs[i], n, want[i].data(), ws[i]->w.rows, m.numerics, m.compute, one_);
      }
      for (ThreadPool* pool : {&one_, &two_}) {
        std::vector<float> xb_inout = xb;  // wb writes its output over its own input
        std::vector<float> wb_out_over_x(xb_inout.size());
        LinearProduct ps[5];
        for (int i = 0; i < 5; ++i) {
          ps[i] = LinearProduct{ws[i]->w, xs[i]->data(), ldxs[i], n, got[i].data(), ws[i]->w.rows};
        }
        ps[3].x = xb_inout.data();
        ps[3].y = xb_inout.data();
        ps[3].ldy = 200;
        linear_group(ps, 5, m.numerics, m.compute, *pool);
        for (int i = 0; i < 5; ++i) {
          for (int64_t t = 0; t < n; ++t) {
            for (int64_t r = 0; r < ws[i]->w.rows; ++r) {
              const float g = i == 3 ? xb_inout[t * 200 + r] : got[i][t * ws[i]->w.rows + r];
              ASSERT_EQ(g, want[i][t * ws[i]->w.rows + r]) << "product " << i << " t=" << t << " r=" << r;
            }
          }
        }
      }
    }
  }
}

// GGUF weights (ops/ggml_kernels decoders): every type, standing for every official format
// (which sets the reference-mode activation rounding and K blocks), on every target. Reference
// mode: the bits of linear_reference (its K-block sums of exact double products, here summed
// in double lanes: equal up to double rounding, see linear_kernels.h); precise mode: within
// the FP32 summation bound; both batch- and thread-invariant.
TEST_F(LinearKernels, GgmlEveryTypeAndRole) {
  std::mt19937 rng(21);
  for (GgmlType type : ggml_weight_types()) {
    const int64_t block = ggml_type_info(static_cast<uint32_t>(type))->block;
    const int64_t cols = block == 256 ? 512 : block == 32 ? 160 : 200;  // 160, 200: partial 128-blocks
    for (WeightFormat role : {WeightFormat::kFp8Block, WeightFormat::kFp4, WeightFormat::kBf16, WeightFormat::kF32}) {
      SCOPED_TRACE(ggml_type_name(static_cast<uint32_t>(type)) + " role " + std::to_string(int(role)));
      const Stored s = make_ggml(type, role, 21, cols, rng);
      ASSERT_TRUE(linear_kernels::supports(s.w));  // the kernels, not the scalar fallback, run
      for_each_target([&] { check_all_modes(s, one_, two_); });
    }
  }
}

TEST_F(LinearKernels, GgmlRowSliceAndGroup) {
  std::mt19937 rng(22);
  Stored s = make_ggml(GgmlType::Q4_K, WeightFormat::kFp8Block, 70, 768, rng);
  Stored slice = s;
  slice.w = s.w.row_slice(13, 40);
  for_each_target([&] { check_all_modes(slice, one_, two_); });
  // MXFP4 standing for FP4: rows whose scales span little sum whole rows in double lanes (exact),
  // the others per 32-block; rows 4..7 here span 2^40.
  Stored mx = make_ggml(GgmlType::MXFP4, WeightFormat::kFp4, 20, 512, rng);
  for (int64_t r = 4; r < 8; ++r) {
    for (int64_t b = 0; b < 16; ++b) mx.data[static_cast<size_t>(r * 16 * 17 + b * 17)] = static_cast<uint8_t>(b % 2 ? 140 : 100);
  }
  for_each_target([&] { check_all_modes(mx, one_, two_); });
  // A group mixing GGUF and native weights gives each product its own bits.
  Stored a = make_ggml(GgmlType::IQ2_XXS, WeightFormat::kFp4, 40, 256, rng);
  Stored b = make_ggml(GgmlType::MXFP4, WeightFormat::kFp4, 24, 256, rng);
  Stored c = make_fp4(16, 256, rng);
  for (const Mode& m : kModes) {
    const std::vector<float> x = make_x(3, 256, 256, rng, m.bf16_inputs);
    const Stored* ws[3] = {&a, &b, &c};
    std::vector<float> want[3], got[3];
    LinearProduct ps[3];
    for (int i = 0; i < 3; ++i) {
      want[i].resize(static_cast<size_t>(3 * ws[i]->w.rows));
      got[i].assign(want[i].size(), -1.0f);
      linear(ws[i]->w, x.data(), 256, 3, want[i].data(), ws[i]->w.rows, m.numerics, m.compute, one_);
      ps[i] = LinearProduct{ws[i]->w, x.data(), 256, 3, got[i].data(), ws[i]->w.rows};
    }
    linear_group(ps, 3, m.numerics, m.compute, two_);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(got[i], want[i]) << "product " << i;
  }
}

}  // namespace
}  // namespace dsv4
