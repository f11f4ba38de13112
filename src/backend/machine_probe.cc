// Highway probes; compiled for the best targets only (they measure the machine, not a target).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backend/machine_probe.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "backend/machine_probe.h"
#include "backend/thread_pool.h"

HWY_BEFORE_NAMESPACE();
namespace dsv4 {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Sum of n floats (n a multiple of 8 vectors) with 8 independent accumulators, so the loop is
// bound by the loads.
float SumFloats(const float* HWY_RESTRICT p, int64_t n) {
  const hn::ScalableTag<float> d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  auto a0 = hn::Zero(d), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  for (int64_t i = 0; i + 8 * N <= n; i += 8 * N) {
    a0 = hn::Add(a0, hn::Load(d, p + i));
    a1 = hn::Add(a1, hn::Load(d, p + i + N));
    a2 = hn::Add(a2, hn::Load(d, p + i + 2 * N));
    a3 = hn::Add(a3, hn::Load(d, p + i + 3 * N));
    a4 = hn::Add(a4, hn::Load(d, p + i + 4 * N));
    a5 = hn::Add(a5, hn::Load(d, p + i + 5 * N));
    a6 = hn::Add(a6, hn::Load(d, p + i + 6 * N));
    a7 = hn::Add(a7, hn::Load(d, p + i + 7 * N));
  }
  const auto s = hn::Add(hn::Add(hn::Add(a0, a1), hn::Add(a2, a3)), hn::Add(hn::Add(a4, a5), hn::Add(a6, a7)));
  return hn::GetLane(hn::SumOfLanes(d, s));
}

// `iters` rounds of 12 independent FMA chains (enough to cover FMA latency x throughput on
// current cores); returns the number of floating-point operations done.
double FmaLoop(int64_t iters, float seed) {
  const hn::ScalableTag<float> d;
  const auto m = hn::Set(d, 0.999999f), c = hn::Set(d, 1e-7f);
  // Different start values, so that the compiler cannot merge the chains.
  auto a0 = hn::Set(d, seed), a1 = hn::Set(d, seed + 1), a2 = hn::Set(d, seed + 2), a3 = hn::Set(d, seed + 3);
  auto a4 = hn::Set(d, seed + 4), a5 = hn::Set(d, seed + 5), a6 = hn::Set(d, seed + 6), a7 = hn::Set(d, seed + 7);
  auto a8 = hn::Set(d, seed + 8), a9 = hn::Set(d, seed + 9), a10 = hn::Set(d, seed + 10), a11 = hn::Set(d, seed + 11);
  for (int64_t i = 0; i < iters; ++i) {
    a0 = hn::MulAdd(a0, m, c); a1 = hn::MulAdd(a1, m, c); a2 = hn::MulAdd(a2, m, c);
    a3 = hn::MulAdd(a3, m, c); a4 = hn::MulAdd(a4, m, c); a5 = hn::MulAdd(a5, m, c);
    a6 = hn::MulAdd(a6, m, c); a7 = hn::MulAdd(a7, m, c); a8 = hn::MulAdd(a8, m, c);
    a9 = hn::MulAdd(a9, m, c); a10 = hn::MulAdd(a10, m, c); a11 = hn::MulAdd(a11, m, c);
  }
  const auto s = hn::Add(hn::Add(hn::Add(a0, a1), hn::Add(a2, a3)), hn::Add(hn::Add(a4, a5), hn::Add(a6, a7)));
  const auto t = hn::Add(s, hn::Add(hn::Add(a8, a9), hn::Add(a10, a11)));
  volatile float sink = hn::GetLane(t);
  (void)sink;
  return static_cast<double>(iters) * 12.0 * 2.0 * static_cast<double>(hn::Lanes(d));
}

}  // namespace HWY_NAMESPACE
}  // namespace dsv4
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace dsv4 {

HWY_EXPORT(SumFloats);
HWY_EXPORT(FmaLoop);

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

double measure_read_bandwidth(ThreadPool& pool, int64_t bytes, int repeats) {
  const int64_t n = bytes / 4 / 1024 * 1024;
  float* p = static_cast<float*>(std::aligned_alloc(64, static_cast<size_t>(n) * 4));
  // Touch every page from the thread that will read it (first-touch placement).
  pool.parallel_for(n, 1024, [p](int64_t b, int64_t e, int) { std::fill(p + b, p + e, 1.0f); });
  double best = 0;
  std::vector<float> sink(static_cast<size_t>(pool.size()));
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.parallel_for(n, 1024, [&](int64_t b, int64_t e, int worker) {
      sink[static_cast<size_t>(worker)] += HWY_DYNAMIC_DISPATCH(SumFloats)(p + b, e - b);
    });
    best = std::max(best, static_cast<double>(n) * 4 / seconds_since(t0));
  }
  std::free(p);
  return best;
}

namespace {
// Best FLOP rate over `repeats` runs of `loop(worker)` (returns the FLOP it did) on every thread.
template <typename Loop>
double best_flop_rate(ThreadPool& pool, int repeats, Loop loop) {
  double best = 0;
  std::vector<double> flops(static_cast<size_t>(pool.size()));
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.parallel_for(pool.size(), 1, [&](int64_t b, int64_t e, int worker) {
      for (int64_t i = b; i < e; ++i) flops[static_cast<size_t>(i)] = loop(worker);
    });
    const double s = seconds_since(t0);
    double total = 0;
    for (double f : flops) total += f;
    best = std::max(best, total / s);
  }
  return best;
}
}  // namespace

double measure_fp32_fma_peak(ThreadPool& pool, int repeats) {
  return best_flop_rate(pool, repeats,
                        [](int worker) { return HWY_DYNAMIC_DISPATCH(FmaLoop)(20'000'000, 1.0f + worker); });
}

#if defined(__x86_64__) && defined(__GNUC__)
namespace {
// 12 independent vdpbf16ps chains; the raw intrinsic because Highway 1.0 (Debian 12) does not
// emit it. Returns the FLOP done (64 per instruction).
__attribute__((target("avx512f,avx512bf16"))) double bf16_dot_loop(int64_t iters, float seed) {
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512bh a = _mm512_cvtne2ps_pbh(one, _mm512_set1_ps(0.5f));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(-1e-3f));
  __m512 acc[12];
  for (int k = 0; k < 12; ++k) acc[k] = _mm512_set1_ps(seed + static_cast<float>(k));
  for (int64_t i = 0; i < iters; ++i)
    for (int k = 0; k < 12; ++k) acc[k] = _mm512_dpbf16_ps(acc[k], a, b);
  __m512 s = acc[0];
  for (int k = 1; k < 12; ++k) s = _mm512_add_ps(s, acc[k]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, s);
  volatile float sink = lanes[0] + lanes[15];
  (void)sink;
  return static_cast<double>(iters) * 12.0 * 64.0;
}
}  // namespace
#endif

double measure_bf16_dot_peak(ThreadPool& pool, int repeats) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (!__builtin_cpu_supports("avx512bf16")) return 0.0;
  return best_flop_rate(pool, repeats, [](int worker) { return bf16_dot_loop(10'000'000, 1.0f + worker); });
#else
  (void)pool;
  (void)repeats;
  return 0.0;
#endif
}

double measure_barrier_cost(ThreadPool& pool, int calls) {
  std::vector<double> t(static_cast<size_t>(calls));
  for (int i = 0; i < calls; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.parallel_for(pool.size(), 1, [](int64_t, int64_t, int) {});
    t[static_cast<size_t>(i)] = seconds_since(t0);
  }
  std::nth_element(t.begin(), t.begin() + calls / 2, t.end());
  return t[static_cast<size_t>(calls / 2)];
}

}  // namespace dsv4
#endif  // HWY_ONCE
