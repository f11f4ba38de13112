// Highway kernels of vec_kernels.h. Compiled once per target by foreach_target.h.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/vec_kernels.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include <algorithm>
#include <type_traits>

#include "ops/vec_kernels.h"

HWY_BEFORE_NAMESPACE();
namespace dsv4::vec_kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Double lanes fed from FP32 loads of the same lane count.
using DD = hn::ScalableTag<double>;
using DF = hn::Rebind<float, DD>;

void DotRowsF64(const float* HWY_RESTRICT a, int64_t rows, int64_t lda, const float* HWY_RESTRICT v, int64_t n,
                double* HWY_RESTRICT out) {
  const DD dd;
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(dd));
  const int64_t full = n / N * N;
  int64_t r = 0;
  // Four rows at a time share the loads of v; two accumulators per row hide the FMA latency.
  for (; r + 4 <= rows; r += 4) {
    const float* a0 = a + r * lda;
    const float* a1 = a0 + lda;
    const float* a2 = a1 + lda;
    const float* a3 = a2 + lda;
    auto s0 = hn::Zero(dd), s1 = hn::Zero(dd), s2 = hn::Zero(dd), s3 = hn::Zero(dd);
    for (int64_t e = 0; e < full; e += N) {
      const auto x = hn::PromoteTo(dd, hn::LoadU(df, v + e));
      s0 = hn::MulAdd(hn::PromoteTo(dd, hn::LoadU(df, a0 + e)), x, s0);
      s1 = hn::MulAdd(hn::PromoteTo(dd, hn::LoadU(df, a1 + e)), x, s1);
      s2 = hn::MulAdd(hn::PromoteTo(dd, hn::LoadU(df, a2 + e)), x, s2);
      s3 = hn::MulAdd(hn::PromoteTo(dd, hn::LoadU(df, a3 + e)), x, s3);
    }
    double t0 = hn::GetLane(hn::SumOfLanes(dd, s0)), t1 = hn::GetLane(hn::SumOfLanes(dd, s1)), t2 = hn::GetLane(hn::SumOfLanes(dd, s2)),
           t3 = hn::GetLane(hn::SumOfLanes(dd, s3));
    for (int64_t e = full; e < n; ++e) {
      const double x = v[e];
      t0 += static_cast<double>(a0[e]) * x;
      t1 += static_cast<double>(a1[e]) * x;
      t2 += static_cast<double>(a2[e]) * x;
      t3 += static_cast<double>(a3[e]) * x;
    }
    out[r] = t0;
    out[r + 1] = t1;
    out[r + 2] = t2;
    out[r + 3] = t3;
  }
  for (; r < rows; ++r) {
    const float* ar = a + r * lda;
    auto s = hn::Zero(dd);
    for (int64_t e = 0; e < full; e += N) {
      s = hn::MulAdd(hn::PromoteTo(dd, hn::LoadU(df, ar + e)), hn::PromoteTo(dd, hn::LoadU(df, v + e)), s);
    }
    double t = hn::GetLane(hn::SumOfLanes(dd, s));
    for (int64_t e = full; e < n; ++e) t += static_cast<double>(ar[e]) * v[e];
    out[r] = t;
  }
}

// acc[e] += p[j] * x[j][x_offset + e] over j in order, 4 vectors of acc in registers across the
// rows. T = double (reference attention core): x promoted, Mul then Add, one rounding
// each, as the scalar `acc[e] += p * x[e]` (a fused multiply-add would round once and change
// the bits). T = float (the precise and int8 core): full-width FP32 lanes and fused multiply-adds,
// deterministic on a target, not the same bits across targets.
template <typename T>
void AxpyRows(const T* HWY_RESTRICT p, const float* const* HWY_RESTRICT x, int64_t count, int64_t n, T* HWY_RESTRICT acc,
              int64_t x_offset) {
  const hn::ScalableTag<T> dt;
  const hn::Rebind<float, decltype(dt)> df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(dt));
  auto step = [&](auto a, auto pv, const float* xs) {
    if constexpr (std::is_same_v<T, double>) {
      return hn::Add(a, hn::Mul(pv, hn::PromoteTo(dt, hn::LoadU(df, xs))));
    } else {
      return hn::MulAdd(pv, hn::LoadU(df, xs), a);
    }
  };
  int64_t e = 0;
  for (; e + 4 * N <= n; e += 4 * N) {
    auto a0 = hn::LoadU(dt, acc + e), a1 = hn::LoadU(dt, acc + e + N), a2 = hn::LoadU(dt, acc + e + 2 * N),
         a3 = hn::LoadU(dt, acc + e + 3 * N);
    for (int64_t j = 0; j < count; ++j) {
      const auto pv = hn::Set(dt, p[j]);
      const float* xj = x[j] + x_offset + e;
      a0 = step(a0, pv, xj);
      a1 = step(a1, pv, xj + N);
      a2 = step(a2, pv, xj + 2 * N);
      a3 = step(a3, pv, xj + 3 * N);
    }
    hn::StoreU(a0, dt, acc + e);
    hn::StoreU(a1, dt, acc + e + N);
    hn::StoreU(a2, dt, acc + e + 2 * N);
    hn::StoreU(a3, dt, acc + e + 3 * N);
  }
  for (; e + N <= n; e += N) {
    auto a = hn::LoadU(dt, acc + e);
    for (int64_t j = 0; j < count; ++j) a = step(a, hn::Set(dt, p[j]), x[j] + x_offset + e);
    hn::StoreU(a, dt, acc + e);
  }
  for (; e < n; ++e) {
    for (int64_t j = 0; j < count; ++j) acc[e] += p[j] * static_cast<T>(x[j][x_offset + e]);
  }
}

void AxpyRowsF64(const double* HWY_RESTRICT p, const float* const* HWY_RESTRICT x, int64_t count, int64_t n,
                 double* HWY_RESTRICT acc) {
  AxpyRows<double>(p, x, count, n, acc, 0);
}

void AxpyRowsF32(const float* HWY_RESTRICT p, const float* const* HWY_RESTRICT x, int64_t count, int64_t n,
                 float* HWY_RESTRICT acc) {
  AxpyRows<float>(p, x, count, n, acc, 0);
}

// Dots of the FP32 attention core (precise, int8) in tiles of 4 heads x 4 rows: each q chunk and row
// chunk loaded once per tile. Every (head, row) pair has its own accumulator (FP32 lanes, fused
// multiply-adds, SumOfLanes, then the tail), so a result does not depend on the tile it falls in.
void DotTileF32(const float* HWY_RESTRICT q, int64_t nh, int64_t ldq, const float* const* HWY_RESTRICT kv, int64_t nkv,
                int64_t n, float* HWY_RESTRICT out, int64_t ldo) {
  const hn::ScalableTag<float> df;
  using VF = hn::Vec<decltype(df)>;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const int64_t full = n / N * N;
  constexpr int kT = 4;
  auto finish = [&](const VF& acc, int64_t h, int64_t j) {
    float t = hn::GetLane(hn::SumOfLanes(df, acc));
    for (int64_t e = full; e < n; ++e) t += q[h * ldq + e] * kv[j][e];
    out[h * ldo + j] = t;
  };
  int64_t h0 = 0;
  for (; h0 + kT <= nh; h0 += kT) {
    int64_t j0 = 0;
    for (; j0 + kT <= nkv; j0 += kT) {
      VF acc[kT][kT];
      for (int a = 0; a < kT; ++a)
        for (int b = 0; b < kT; ++b) acc[a][b] = hn::Zero(df);
      for (int64_t e = 0; e < full; e += N) {
        VF k[kT];
        for (int b = 0; b < kT; ++b) k[b] = hn::LoadU(df, kv[j0 + b] + e);
        for (int a = 0; a < kT; ++a) {
          const VF x = hn::LoadU(df, q + (h0 + a) * ldq + e);
          for (int b = 0; b < kT; ++b) acc[a][b] = hn::MulAdd(x, k[b], acc[a][b]);
        }
      }
      for (int a = 0; a < kT; ++a)
        for (int b = 0; b < kT; ++b) finish(acc[a][b], h0 + a, j0 + b);
    }
    for (; j0 < nkv; ++j0) {
      VF acc[kT];
      for (int a = 0; a < kT; ++a) acc[a] = hn::Zero(df);
      for (int64_t e = 0; e < full; e += N) {
        const VF k = hn::LoadU(df, kv[j0] + e);
        for (int a = 0; a < kT; ++a) acc[a] = hn::MulAdd(hn::LoadU(df, q + (h0 + a) * ldq + e), k, acc[a]);
      }
      for (int a = 0; a < kT; ++a) finish(acc[a], h0 + a, j0);
    }
  }
  for (; h0 < nh; ++h0) {
    for (int64_t j = 0; j < nkv; ++j) {
      VF acc = hn::Zero(df);
      for (int64_t e = 0; e < full; e += N) acc = hn::MulAdd(hn::LoadU(df, q + h0 * ldq + e), hn::LoadU(df, kv[j] + e), acc);
      finish(acc, h0, j);
    }
  }
}

// acc[h][e] += p[h][j] * x[j][e] over j in order (AxpyRows<float>'s order per element), 4 heads
// at a time sharing each load of x.
void AxpyHeadsF32(const float* HWY_RESTRICT p, int64_t nh, int64_t ldp, const float* const* HWY_RESTRICT x, int64_t count,
                  int64_t n, float* HWY_RESTRICT acc, int64_t lda) {
  const hn::ScalableTag<float> df;
  using VF = hn::Vec<decltype(df)>;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const int64_t full = n / N * N;
  constexpr int kT = 4;
  int64_t h0 = 0;
  for (; h0 + kT <= nh; h0 += kT) {
    int64_t e = 0;
    for (; e + 2 * N <= full; e += 2 * N) {
      VF a[kT][2];
      for (int h = 0; h < kT; ++h) {
        a[h][0] = hn::LoadU(df, acc + (h0 + h) * lda + e);
        a[h][1] = hn::LoadU(df, acc + (h0 + h) * lda + e + N);
      }
      for (int64_t j = 0; j < count; ++j) {
        const VF x0 = hn::LoadU(df, x[j] + e), x1 = hn::LoadU(df, x[j] + e + N);
        for (int h = 0; h < kT; ++h) {
          const VF pv = hn::Set(df, p[(h0 + h) * ldp + j]);
          a[h][0] = hn::MulAdd(pv, x0, a[h][0]);
          a[h][1] = hn::MulAdd(pv, x1, a[h][1]);
        }
      }
      for (int h = 0; h < kT; ++h) {
        hn::StoreU(a[h][0], df, acc + (h0 + h) * lda + e);
        hn::StoreU(a[h][1], df, acc + (h0 + h) * lda + e + N);
      }
    }
    for (int h = 0; h < kT; ++h) AxpyRows<float>(p + (h0 + h) * ldp, x, count, n - e, acc + (h0 + h) * lda + e, e);
  }
  for (; h0 < nh; ++h0) AxpyRows<float>(p + h0 * ldp, x, count, n, acc + h0 * lda, 0);
}

void DotColsBlocksF32(const float* HWY_RESTRICT at, int64_t rows, const float* HWY_RESTRICT v, int64_t n,
                      int64_t block, double* HWY_RESTRICT out) {
  const hn::ScalableTag<float> df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  for (int64_t r = 0; r < rows; ++r) out[r] = 0.0;
  int64_t r0 = 0;
  for (; r0 + N <= rows; r0 += N) {
    for (int64_t b0 = 0; b0 < n; b0 += block) {
      const int64_t b1 = std::min(n, b0 + block);
      auto acc = hn::Zero(df);
      for (int64_t e = b0; e < b1; ++e) acc = hn::MulAdd(hn::LoadU(df, at + e * rows + r0), hn::Set(df, v[e]), acc);
      alignas(64) float lanes[64];
      hn::Store(acc, df, lanes);
      for (int64_t j = 0; j < N; ++j) out[r0 + j] += static_cast<double>(lanes[j]);
    }
  }
  for (; r0 < rows; ++r0) {
    for (int64_t b0 = 0; b0 < n; b0 += block) {
      const int64_t b1 = std::min(n, b0 + block);
      float acc = 0.0f;
      for (int64_t e = b0; e < b1; ++e) acc += at[e * rows + r0] * v[e];
      out[r0] += static_cast<double>(acc);
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace dsv4::vec_kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace dsv4 {
namespace vec_kernels {
HWY_EXPORT(DotRowsF64);
HWY_EXPORT(AxpyRowsF64);
HWY_EXPORT(DotColsBlocksF32);
HWY_EXPORT(AxpyRowsF32);
HWY_EXPORT(DotTileF32);
HWY_EXPORT(AxpyHeadsF32);
}  // namespace vec_kernels

void dot_rows_f64(const float* a, int64_t rows, int64_t lda, const float* v, int64_t n, double* out) {
  HWY_DYNAMIC_DISPATCH(vec_kernels::DotRowsF64)(a, rows, lda, v, n, out);
}

void axpy_rows_f64(const double* p, const float* const* x, int64_t count, int64_t n, double* acc) {
  HWY_DYNAMIC_DISPATCH(vec_kernels::AxpyRowsF64)(p, x, count, n, acc);
}

void axpy_rows_f32(const float* p, const float* const* x, int64_t count, int64_t n, float* acc) {
  HWY_DYNAMIC_DISPATCH(vec_kernels::AxpyRowsF32)(p, x, count, n, acc);
}

void dot_tile_f32(const float* q, int64_t nh, int64_t ldq, const float* const* kv, int64_t nkv, int64_t n, float* out,
                  int64_t ldo) {
  HWY_DYNAMIC_DISPATCH(vec_kernels::DotTileF32)(q, nh, ldq, kv, nkv, n, out, ldo);
}

void axpy_heads_f32(const float* p, int64_t nh, int64_t ldp, const float* const* x, int64_t count, int64_t n, float* acc,
                    int64_t lda) {
  HWY_DYNAMIC_DISPATCH(vec_kernels::AxpyHeadsF32)(p, nh, ldp, x, count, n, acc, lda);
}

void dot_cols_blocks_f32(const float* at, int64_t rows, const float* v, int64_t n, int64_t block, double* out) {
  HWY_DYNAMIC_DISPATCH(vec_kernels::DotColsBlocksF32)(at, rows, v, n, block, out);
}

}  // namespace dsv4
#endif  // HWY_ONCE
