// Kernel benchmark: measures this machine's read bandwidth and FP32 FMA peak, then linear()
// per weight format for decode (1 token: GB/s of weight bytes -> fraction of the bandwidth)
// and prefill (many tokens: GFLOP/s -> fraction of the FMA peak), with 1 and 2 threads, in
// both numerics modes. The yardsticks are measured in the same run, since the machine is
// shared and its numbers drift.
//
//   kernel_bench [--threads 1,2] [--tokens 128] [--quick]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/machine_probe.h"
#include "backend/thread_pool.h"
#include "ops/formats.h"
#include "ops/linear.h"
#include "ops/linear_kernels.h"

namespace dsv4 {
namespace {

struct Weight {
  std::vector<uint8_t> data, scale;
  WeightMatrix w;
  int64_t bytes() const { return static_cast<int64_t>(data.size() + scale.size()); }
};

// Random weights of a realistic scale (E8M0 around 2^-8), values that are never NaN.
Weight make_weight(WeightFormat format, int64_t rows, int64_t cols) {
  std::mt19937 rng(7);
  Weight m;
  m.w.format = format;
  m.w.rows = m.w.total_rows = rows;
  m.w.cols = cols;
  switch (format) {
    case WeightFormat::kFp8Block:
      m.data.resize(static_cast<size_t>(rows * cols));
      for (uint8_t& c : m.data) c = static_cast<uint8_t>(rng() % 0x7F) | static_cast<uint8_t>(rng() & 0x80);
      m.scale.assign(static_cast<size_t>(((rows + 127) / 128) * ((cols + 127) / 128)), 119);
      break;
    case WeightFormat::kFp4:
      m.data.resize(static_cast<size_t>(rows * cols / 2));
      for (uint8_t& c : m.data) c = static_cast<uint8_t>(rng());
      m.scale.assign(static_cast<size_t>(rows * cols / 32), 121);
      break;
    case WeightFormat::kBf16:
      m.data.resize(static_cast<size_t>(rows * cols * 2));
      for (size_t i = 0; i < m.data.size(); i += 2) {
        const uint16_t b = f32_to_bf16(static_cast<float>(static_cast<int>(rng() % 2001) - 1000) * 1e-4f);
        std::memcpy(&m.data[i], &b, 2);
      }
      break;
    case WeightFormat::kF32:
      m.data.resize(static_cast<size_t>(rows * cols * 4));
      for (size_t i = 0; i < m.data.size(); i += 4) {
        const float f = static_cast<float>(static_cast<int>(rng() % 2001) - 1000) * 1e-4f;
        std::memcpy(&m.data[i], &f, 4);
      }
      break;
  }
  m.w.data = m.data.data();
  m.w.scale = m.scale.empty() ? nullptr : m.scale.data();
  return m;
}

// Best time of `repeats` calls after one warm-up (the minimum is the least disturbed by the
// other processes on a shared machine).
template <typename F>
double best_seconds(int repeats, F&& f) {
  f();
  double best = 1e30;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

const char* format_name(WeightFormat f) {
  switch (f) {
    case WeightFormat::kFp8Block: return "FP8";
    case WeightFormat::kFp4: return "FP4";
    case WeightFormat::kBf16: return "BF16";
    case WeightFormat::kF32: return "F32";
  }
  return "?";
}

int run(int argc, char** argv) {
  std::vector<int> thread_counts = {1, 2};
  int64_t prefill_tokens = 128;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) {
      thread_counts.clear();
      for (const char* p = argv[++i]; *p;) {
        thread_counts.push_back(std::atoi(p));
        while (*p && *p != ',') ++p;
        if (*p == ',') ++p;
      }
    } else if (a == "--tokens" && i + 1 < argc) {
      prefill_tokens = std::atoll(argv[++i]);
    } else if (a == "--quick") {
      quick = true;
    } else {
      std::fprintf(stderr, "usage: kernel_bench [--threads 1,2] [--tokens N] [--quick]\n");
      return 2;
    }
  }
  const int repeats = quick ? 3 : 7;
  std::printf("kernel target: %s\n", linear_kernels::current_target_name().c_str());

  // Decode matrices: far larger than the caches (~30 MB of weights each).
  // Prefill matrices: smaller, since the work grows with the token count.
  const WeightFormat formats[] = {WeightFormat::kFp8Block, WeightFormat::kFp4, WeightFormat::kBf16, WeightFormat::kF32};
  for (int threads : thread_counts) {
    ThreadPool pool(threads);
    const double bw = measure_read_bandwidth(pool, int64_t{1} << (quick ? 28 : 30), repeats);
    const double peak = measure_fp32_fma_peak(pool, repeats);
    const double barrier = measure_barrier_cost(pool);
    std::printf("\n== %d thread(s): read bandwidth %.1f GB/s, FP32 FMA peak %.1f GFLOP/s, barrier %.2f us\n", threads,
                bw / 1e9, peak / 1e9, barrier * 1e6);
    std::printf("%-5s %-9s | %-30s | %-36s\n", "fmt", "mode", "decode: GB/s (of bandwidth)",
                "prefill: GFLOP/s (of FMA peak)");
    for (WeightFormat f : formats) {
      const int64_t bytes_per_weight_x2 = f == WeightFormat::kFp4 ? 1 : f == WeightFormat::kFp8Block ? 2 : f == WeightFormat::kBf16 ? 4 : 8;
      const int64_t cols = 4096;
      const int64_t decode_rows = (int64_t{quick ? 8 : 32} << 20) * 2 / bytes_per_weight_x2 / cols / 16 * 16;
      const Weight dec = make_weight(f, decode_rows, cols);
      const Weight pre = make_weight(f, 512, cols);
      std::vector<float> x(static_cast<size_t>(prefill_tokens * cols));
      std::mt19937 rng(3);
      std::normal_distribution<float> nd;
      for (float& v : x) v = round_bf16(nd(rng));
      std::vector<float> y(static_cast<size_t>(prefill_tokens * std::max<int64_t>(decode_rows, 512)));
      for (Numerics numerics : {Numerics::kReference, Numerics::kPrecise}) {
        const double td = best_seconds(repeats, [&] {
          linear(dec.w, x.data(), cols, 1, y.data(), decode_rows, numerics, LinearCompute::kNative, pool);
        });
        const double tp = best_seconds(quick ? 1 : 3, [&] {
          linear(pre.w, x.data(), cols, prefill_tokens, y.data(), 512, numerics, LinearCompute::kNative, pool);
        });
        const double gbs = static_cast<double>(dec.bytes()) / td;
        const double flops = 2.0 * 512 * cols * static_cast<double>(prefill_tokens) / tp;
        std::printf("%-5s %-9s | %7.2f GB/s (%5.1f%%) %7.3f ms | %7.1f GFLOP/s (%5.1f%%) %4lld tok\n", format_name(f),
                    numerics == Numerics::kPrecise ? "precise" : "reference", gbs / 1e9, 100.0 * gbs / bw, td * 1e3,
                    flops / 1e9, 100.0 * flops / peak, static_cast<long long>(prefill_tokens));
      }
    }
  }
  return 0;
}

}  // namespace
}  // namespace dsv4

int main(int argc, char** argv) { return dsv4::run(argc, argv); }
