// vec_kernels: the SIMD double dots equal the sequential double loop up to double rounding;
// the FP32 block-sum dots equal them bit for bit on FP4 data (the reference indexer's case),
// on every compiled dispatch target; axpy_rows_f64 equals the scalar loop bit for bit; the FP32
// head tiles give every head the bits of that head alone.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "ops/linear_kernels.h"
#include "ops/quant_sim.h"
#include "ops/vec_kernels.h"

namespace dsv4 {
namespace {

std::vector<float> fp4_data(int64_t rows, int64_t cols, std::mt19937& rng, float spread) {
  std::normal_distribution<float> nd;
  std::uniform_real_distribution<float> ex(-spread, spread);
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (int64_t b = 0; b < rows * cols; b += 32) {
    const float scale = std::exp2(ex(rng));  // blocks of different magnitudes
    for (int64_t i = b; i < b + 32; ++i) x[static_cast<size_t>(i)] = nd(rng) * scale;
  }
  for (int64_t r = 0; r < rows; ++r) fp4_simulate(x.data() + r * cols, cols, 32);
  return x;
}

TEST(VecKernels, Fp4BlockSumsEqualDoubleDotsOnEveryTarget) {
  const int64_t H = 37, d = 128;  // 37 heads: a partial vector of heads too
  std::mt19937 rng(5);
  int checked = 0;
  for (int64_t target : linear_kernels::available_targets()) {
    linear_kernels::force_target(target);
    for (int rep = 0; rep < 20; ++rep) {
      const std::vector<float> q = fp4_data(H, d, rng, 6.0f), k = fp4_data(1, d, rng, 6.0f);
      std::vector<float> qT(static_cast<size_t>(H * d));
      for (int64_t h = 0; h < H; ++h)
        for (int64_t e = 0; e < d; ++e) qT[static_cast<size_t>(e * H + h)] = q[static_cast<size_t>(h * d + e)];
      std::vector<double> fast(static_cast<size_t>(H)), ref(static_cast<size_t>(H));
      dot_cols_blocks_f32(qT.data(), H, k.data(), d, 32, fast.data());
      dot_rows_f64(q.data(), H, d, k.data(), d, ref.data());
      for (int64_t h = 0; h < H; ++h) {
        double seq = 0;  // the sequential double loop (exact here)
        for (int64_t e = 0; e < d; ++e) seq += static_cast<double>(q[static_cast<size_t>(h * d + e)]) * k[static_cast<size_t>(e)];
        ASSERT_EQ(fast[static_cast<size_t>(h)], seq) << linear_kernels::target_name(target) << " head " << h;
        ASSERT_EQ(ref[static_cast<size_t>(h)], seq) << linear_kernels::target_name(target) << " head " << h;
        ++checked;
      }
    }
  }
  linear_kernels::force_target(0);
  EXPECT_GT(checked, 0);
}

TEST(VecKernels, DoubleDotsAndAxpyMatchScalarLoops) {
  std::mt19937 rng(9);
  std::normal_distribution<float> nd;
  for (int64_t target : linear_kernels::available_targets()) {
    linear_kernels::force_target(target);
    for (int64_t n : {1, 7, 64, 131, 512}) {
      const int64_t rows = 6;
      std::vector<float> a(static_cast<size_t>(rows * n)), v(static_cast<size_t>(n));
      for (float& x : a) x = nd(rng);
      for (float& x : v) x = nd(rng);
      std::vector<double> out(static_cast<size_t>(rows));
      dot_rows_f64(a.data(), rows, n, v.data(), n, out.data());
      for (int64_t r = 0; r < rows; ++r) {
        double seq = 0, mag = 0;
        for (int64_t e = 0; e < n; ++e) {
          const double p = static_cast<double>(a[static_cast<size_t>(r * n + e)]) * v[static_cast<size_t>(e)];
          seq += p;
          mag += std::fabs(p);
        }
        EXPECT_NEAR(out[static_cast<size_t>(r)], seq, mag * 1e-15) << linear_kernels::target_name(target);
      }
      std::vector<double> acc(static_cast<size_t>(n), 0.25), acc_ref = acc;
      const double p = 0.3719;
      const float* vrow = v.data();
      axpy_rows_f64(&p, &vrow, 1, n, acc.data());
      for (int64_t e = 0; e < n; ++e) acc_ref[static_cast<size_t>(e)] += p * static_cast<double>(v[static_cast<size_t>(e)]);
      EXPECT_EQ(acc, acc_ref) << linear_kernels::target_name(target) << " n " << n;
      // Several rows at once (P.V of a block): the scalar loop's bits, row after row.
      for (int64_t count : {0, 1, 5, 6}) {
        std::vector<double> pj(static_cast<size_t>(count));
        std::vector<const float*> xj(static_cast<size_t>(count));
        for (int64_t j = 0; j < count; ++j) {
          pj[static_cast<size_t>(j)] = std::ldexp(static_cast<double>(nd(rng)), -3);
          xj[static_cast<size_t>(j)] = a.data() + j * n;
        }
        std::vector<double> acc2(static_cast<size_t>(n), -0.125), ref2 = acc2;
        axpy_rows_f64(pj.data(), xj.data(), count, n, acc2.data());
        for (int64_t j = 0; j < count; ++j)
          for (int64_t e = 0; e < n; ++e)
            ref2[static_cast<size_t>(e)] += pj[static_cast<size_t>(j)] * static_cast<double>(a[static_cast<size_t>(j * n + e)]);
        EXPECT_EQ(acc2, ref2) << linear_kernels::target_name(target) << " n " << n << " rows " << count;
      }
    }
  }
  linear_kernels::force_target(0);
}

// The int8 mode's attention core: the head tiles give each (head, row) the bits of that head
// alone, whatever the head count and offset (so whatever the thread split), close to double
// sums; P.V of many heads the bits of the one-row kernel; on every target, for lengths with and
// without a partial vector.
TEST(VecKernels, HeadTilesHaveTheOneRowBitsOnEveryTarget) {
  struct Guard {
    ~Guard() { linear_kernels::force_target(0); }
  } guard;
  std::mt19937 rng(9);
  std::normal_distribution<float> nd;
  for (int64_t target : linear_kernels::available_targets()) {
    linear_kernels::force_target(target);
    for (int64_t n : {int64_t{512}, int64_t{72}, int64_t{13}}) {
      const int64_t H = 11, R = 7;
      std::vector<float> q(static_cast<size_t>(H * n)), kv(static_cast<size_t>(R * n)), p(static_cast<size_t>(H * 64));
      for (float& v : q) v = nd(rng);
      for (float& v : kv) v = nd(rng);
      for (float& v : p) v = std::fabs(nd(rng));
      std::vector<const float*> rows;
      for (int64_t j = 0; j < R; ++j) rows.push_back(kv.data() + j * n);
      for (int64_t h0 : {int64_t{0}, int64_t{3}}) {  // tiles starting at different heads
        const int64_t nh = H - h0;
        std::vector<float> tile(static_cast<size_t>(nh * 64), -1.0f);
        dot_tile_f32(q.data() + h0 * n, nh, n, rows.data(), R, n, tile.data(), 64);
        std::vector<float> acc(static_cast<size_t>(nh * n), 0.5f), want_acc = acc;
        axpy_heads_f32(p.data() + h0 * 64, nh, 64, rows.data(), R, n, acc.data(), n);
        for (int64_t h = 0; h < nh; ++h) {
          float one[R];  // this head alone
          dot_tile_f32(q.data() + (h0 + h) * n, 1, n, rows.data(), R, n, one, R);
          axpy_rows_f32(p.data() + (h0 + h) * 64, rows.data(), R, n, want_acc.data() + h * n);
          for (int64_t j = 0; j < R; ++j) {
            const float got = tile[static_cast<size_t>(h * 64 + j)];
            EXPECT_EQ(got, one[j]) << "head " << h0 + h << " row " << j << " n " << n;
            double exact = 0.0;
            for (int64_t e = 0; e < n; ++e) exact += static_cast<double>(q[static_cast<size_t>((h0 + h) * n + e)]) * kv[static_cast<size_t>(j * n + e)];
            EXPECT_NEAR(got, exact, 1e-4 * std::sqrt(static_cast<double>(n)) * 4);
          }
        }
        for (size_t i = 0; i < acc.size(); ++i) ASSERT_EQ(acc[i], want_acc[i]) << "P.V element " << i << " n " << n;
      }
    }
  }
}

}  // namespace
}  // namespace dsv4
