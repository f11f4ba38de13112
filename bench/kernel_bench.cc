// Kernel benchmark: measures this machine's read bandwidth and FP32 FMA peak, then linear()
// per weight format for decode (1 token: GB/s of weight bytes -> fraction of the bandwidth)
// and prefill (many tokens: GFLOP/s -> fraction of the FMA peak), with 1 and 2 threads, in
// both numerics modes. The yardsticks are measured in the same run, since the machine is
// shared and its numbers drift.
//
//   kernel_bench [--threads 1,2] [--tokens 128] [--quick] [--formats FP8,FP4,BF16,F32] [--no-moe] [--hot]
//                [--ggml q8_0,q4_K,...|all]
//
// --ggml adds GGUF weight types (ops/ggml_types) in the same table: decode GB/s of the stored
// weight bytes (fraction of the read bandwidth) and prefill GFLOP/s, in both numerics modes
// (reference mode as an FP8-role weight, MXFP4 as an FP4-role one). With --ggml alone, only
// those types run (add --formats to run native formats too).
//
// --checksum prints a hash of linear()'s output bits per format, mode, token count and target
// (random weights, mixed scales; also GGUF types standing for FP8 and FP4), to compare kernel
// versions bit for bit.
// --hot adds a decode from a cache-resident weight (4 MiB, in the last-level cache): the kernels' compute speed alone,
// as GB/s and as weight bytes per FMA-peak cycle (an FMA-cycle being 64 FP32 flops here), which
// stays comparable between runs on a loaded machine.
//
// Last, one MoE decode step (6 experts' FP4 w1, w3, w2) as 18 linear() calls and as two
// linear_group() passes.
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
#include "ops/ggml_types.h"
#include "ops/linear.h"
#include "ops/linear_kernels.h"

namespace dsv4 {
namespace {

struct Weight {
  std::vector<uint8_t> data, scale;
  WeightMatrix w;
  int64_t bytes() const { return static_cast<int64_t>(data.size() + scale.size()); }
};

// Random weights of a realistic scale (E8M0 around 2^-8), values that are never NaN. Large
// weights repeat a 1 MiB random pattern (the speed does not depend on the values, and
// generating hundreds of MiB of random numbers would dominate the run).
Weight make_weight(WeightFormat format, int64_t rows, int64_t cols) {
  std::mt19937 rng(7);
  Weight m;
  m.w.format = format;
  m.w.rows = m.w.total_rows = rows;
  m.w.cols = cols;
  const int64_t elem_x2 = format == WeightFormat::kFp4 ? 1 : format == WeightFormat::kFp8Block ? 2 : format == WeightFormat::kBf16 ? 4 : 8;
  m.data.resize(static_cast<size_t>(rows * cols * elem_x2 / 2));
  const size_t pattern = std::min<size_t>(m.data.size(), size_t{1} << 20);
  for (size_t i = 0; i < pattern; ++i) {
    switch (format) {
      case WeightFormat::kFp8Block:
        m.data[i] = static_cast<uint8_t>(rng() % 0x7F) | static_cast<uint8_t>(rng() & 0x80);
        break;
      case WeightFormat::kFp4:
        m.data[i] = static_cast<uint8_t>(rng());
        break;
      case WeightFormat::kBf16:
        if (i % 2 == 0) {
          const uint16_t b = f32_to_bf16(static_cast<float>(static_cast<int>(rng() % 2001) - 1000) * 1e-4f);
          std::memcpy(&m.data[i], &b, 2);
        }
        break;
      case WeightFormat::kF32:
        if (i % 4 == 0) {
          const float f = static_cast<float>(static_cast<int>(rng() % 2001) - 1000) * 1e-4f;
          std::memcpy(&m.data[i], &f, 4);
        }
        break;
      case WeightFormat::kGgml:
        break;
    }
  }
  for (size_t i = pattern; i < m.data.size(); i += pattern) {
    std::memcpy(&m.data[i], m.data.data(), std::min(pattern, m.data.size() - i));
  }
  if (format == WeightFormat::kFp8Block) m.scale.assign(static_cast<size_t>(((rows + 127) / 128) * ((cols + 127) / 128)), 119);
  if (format == WeightFormat::kFp4) m.scale.assign(static_cast<size_t>(rows * cols / 32), 121);
  m.w.data = m.data.data();
  m.w.scale = m.scale.empty() ? nullptr : m.scale.data();
  return m;
}

// Offsets of the F16 scale fields (d, dmin / m) in a block of `type`; MXFP4's E8M0 byte is 0.
std::vector<int> ggml_scale_offsets(GgmlType type) {
  switch (type) {
    case GgmlType::Q4_1: case GgmlType::Q5_1: case GgmlType::Q4_K: case GgmlType::Q5_K: return {0, 2};
    case GgmlType::Q2_K: return {80, 82};
    case GgmlType::Q3_K: return {108};
    case GgmlType::Q6_K: return {208};
    default: return {0};
  }
}

// Random ggml blocks with realistic scales (F16 d, dmin around 2^-8; MXFP4 E8M0 near 2^-8):
// the speed does not depend on the values. Float types hold small random values. A 1 MiB-ish
// block-aligned pattern is repeated as in make_weight.
Weight make_ggml_weight(GgmlType type, int64_t rows, int64_t cols) {
  std::mt19937 rng(9);
  Weight m;
  m.w.format = WeightFormat::kGgml;
  m.w.ggml_type = type;
  m.w.ggml_role = type == GgmlType::MXFP4 ? WeightFormat::kFp4 : WeightFormat::kFp8Block;
  m.w.rows = m.w.total_rows = rows;
  m.w.cols = cols;
  const auto info = *ggml_type_info(static_cast<uint32_t>(type));
  m.data.resize(static_cast<size_t>(rows * ggml_row_bytes(type, cols)));
  const size_t bb = static_cast<size_t>(info.block_bytes);
  const size_t pattern = std::min(m.data.size(), ((size_t{1} << 20) / bb + 1) * bb);
  for (size_t i = 0; i < pattern; ++i) m.data[i] = static_cast<uint8_t>(rng());
  if (info.block == 1) {  // F32 / F16 / BF16 values in [-0.1, 0.1]
    for (size_t i = 0; i + bb <= pattern; i += bb) {
      const float v = static_cast<float>(static_cast<int>(rng() % 2001) - 1000) * 1e-4f;
      uint8_t b[4];
      if (type == GgmlType::F32) std::memcpy(b, &v, 4);
      const uint16_t h = type == GgmlType::F16 ? f32_to_f16(v) : f32_to_bf16(v);
      if (type != GgmlType::F32) std::memcpy(b, &h, 2);
      std::memcpy(&m.data[i], b, bb);
    }
  } else {
    for (size_t i = 0; i + bb <= pattern; i += bb) {
      if (type == GgmlType::MXFP4) {
        m.data[i] = static_cast<uint8_t>(118 + rng() % 4);
        continue;
      }
      for (int o : ggml_scale_offsets(type)) {
        const uint16_t h = f32_to_f16(std::ldexp(1.0f + static_cast<float>(rng() % 64) / 64.0f, -9));
        std::memcpy(&m.data[i + static_cast<size_t>(o)], &h, 2);
      }
    }
  }
  for (size_t i = pattern; i < m.data.size(); i += pattern) {
    std::memcpy(&m.data[i], m.data.data(), std::min(pattern, m.data.size() - i));
  }
  m.w.data = m.data.data();
  return m;
}

// Best time of `repeats` calls after one warm-up (the minimum is the least disturbed by the
// other processes on a shared machine).
template <typename F>
double best_seconds(int repeats, F&& f) {
  if (repeats == 0) {  // one timed call, no warm-up
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
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
    case WeightFormat::kGgml: return "GGML";
  }
  return "?";
}

int checksum() {
  const WeightFormat formats[] = {WeightFormat::kFp8Block, WeightFormat::kFp4, WeightFormat::kBf16, WeightFormat::kF32};
  ThreadPool pool(2);
  for (int64_t target : linear_kernels::available_targets()) {
    linear_kernels::force_target(target);
    for (WeightFormat f : formats) {
      for (int64_t cols : {int64_t{4096}, int64_t{1024 + 64}, int64_t{1024 + 40}, int64_t{2048}}) {
        if (f == WeightFormat::kFp4 && cols % 32 != 0) continue;
        const bool tight = cols == 2048;  // narrow scale ranges: whole FP4 rows sum exactly
        Weight m = make_weight(f, 272, cols);
        std::mt19937 rng(5);
        if (!m.scale.empty()) {  // mixed scales, a few far ones
          for (uint8_t& s : m.scale) {
            s = tight ? static_cast<uint8_t>(119 + rng() % 3) : static_cast<uint8_t>(110 + rng() % 20 + (rng() % 4096 == 0 ? 60 : 0));
          }
        }
        std::vector<float> x(static_cast<size_t>(9 * cols));
        std::normal_distribution<float> nd;
        for (float& v : x) v = nd(rng) * (!tight && rng() % 16 == 0 ? 1e-3f : 1.0f);
        for (Numerics numerics : {Numerics::kReference, Numerics::kPrecise}) {
          for (int64_t n : {int64_t{1}, int64_t{2}, int64_t{3}, int64_t{9}}) {
            std::vector<float> y(static_cast<size_t>(n * 272));
            linear(m.w, x.data(), cols, n, y.data(), 272, numerics, LinearCompute::kNative, pool);
            uint64_t h = 1469598103934665603ull;
            for (float v : y) {
              uint32_t b;
              std::memcpy(&b, &v, 4);
              h = (h ^ b) * 1099511628211ull;
            }
            std::printf("%-8s %-5s cols %5lld %-9s n %lld: %016llx\n", linear_kernels::target_name(target).c_str(),
                        format_name(f), static_cast<long long>(cols),
                        numerics == Numerics::kPrecise ? "precise" : "reference", static_cast<long long>(n),
                        static_cast<unsigned long long>(h));
          }
        }
      }
    }
  }
  // GGUF types, each standing for FP8 and for FP4 (the reference-mode K blocks differ).
  for (int64_t target : linear_kernels::available_targets()) {
    linear_kernels::force_target(target);
    for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q2_K, GgmlType::IQ2_XXS,
                          GgmlType::MXFP4, GgmlType::F16, GgmlType::BF16}) {
      for (WeightFormat role : {WeightFormat::kFp8Block, WeightFormat::kFp4}) {
        const int64_t cols = 1024;
        Weight m = make_ggml_weight(type, 272, cols);
        m.w.ggml_role = role;
        std::mt19937 rng(5);
        std::vector<float> x(static_cast<size_t>(9 * cols));
        std::normal_distribution<float> nd;
        for (float& v : x) v = nd(rng);
        for (Numerics numerics : {Numerics::kReference, Numerics::kPrecise}) {
          for (int64_t n : {int64_t{1}, int64_t{2}, int64_t{9}}) {
            std::vector<float> y(static_cast<size_t>(n * 272));
            linear(m.w, x.data(), cols, n, y.data(), 272, numerics, LinearCompute::kNative, pool);
            uint64_t h = 1469598103934665603ull;
            for (float v : y) {
              uint32_t b;
              std::memcpy(&b, &v, 4);
              h = (h ^ b) * 1099511628211ull;
            }
            std::printf("%-8s %-7s as %-3s %-9s n %lld: %016llx\n", linear_kernels::target_name(target).c_str(),
                        ggml_type_name(static_cast<uint32_t>(type)).c_str(), role == WeightFormat::kFp4 ? "FP4" : "FP8",
                        numerics == Numerics::kPrecise ? "precise" : "reference", static_cast<long long>(n),
                        static_cast<unsigned long long>(h));
          }
        }
      }
    }
  }
  linear_kernels::force_target(0);
  return 0;
}

int run(int argc, char** argv) {
  std::vector<int> thread_counts = {1, 2};
  int64_t prefill_tokens = 128;
  bool quick = false, moe = true, hot = false;
  std::string only_formats;  // empty: all
  std::vector<GgmlType> ggml_types;
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
    } else if (a == "--formats" && i + 1 < argc) {
      only_formats = "," + std::string(argv[++i]) + ",";
    } else if (a == "--ggml" && i + 1 < argc) {
      const std::string list = "," + std::string(argv[++i]) + ",";
      for (uint32_t id = 0; id < 64; ++id) {
        const auto info = ggml_type_info(id);
        if (!info || !info->dequantizable || id == static_cast<uint32_t>(GgmlType::I32)) continue;
        if (list == ",all," || list.find("," + std::string(info->name) + ",") != std::string::npos) {
          ggml_types.push_back(static_cast<GgmlType>(id));
        }
      }
      if (only_formats.empty()) only_formats = ",none,";
    } else if (a == "--no-moe") {
      moe = false;
    } else if (a == "--hot") {
      hot = true;
    } else if (a == "--checksum") {
      return checksum();
    } else {
      std::fprintf(stderr, "usage: kernel_bench [--threads 1,2] [--tokens N] [--quick] [--formats FP8,FP4,BF16,F32] [--no-moe] [--hot] [--checksum] [--ggml TYPES|all]\n");
      return 2;
    }
  }
  const int repeats = quick ? 2 : 5;
  std::printf("kernel target: %s\n", linear_kernels::current_target_name().c_str());

  const WeightFormat formats[] = {WeightFormat::kFp8Block, WeightFormat::kFp4, WeightFormat::kBf16, WeightFormat::kF32};
  for (int threads : thread_counts) {
    ThreadPool pool(threads);
    const double bw = measure_read_bandwidth(pool, int64_t{1} << (quick ? 28 : 30), repeats);
    const double peak = measure_fp32_fma_peak(pool, repeats);
    const double barrier = measure_barrier_cost(pool);
    std::printf("\n== %d thread(s): read bandwidth %.1f GB/s, FP32 FMA peak %.1f GFLOP/s, barrier %.2f us\n", threads,
                bw / 1e9, peak / 1e9, barrier * 1e6);
    std::fflush(stdout);
    std::printf("%-5s %-9s | %-32s | %-40s\n", "fmt", "mode", "decode (1 token): weight GB/s",
                "prefill: GFLOP/s");
    for (WeightFormat f : formats) {
      if (!only_formats.empty() && only_formats.find("," + std::string(format_name(f)) + ",") == std::string::npos) continue;
      // Decode: a model's worth of layers, 8 matrices of 48 MiB each (384 MiB, far beyond
      // the last-level cache), one linear per matrix, as a decode step reads its weights.
      const int64_t elem_x2 = f == WeightFormat::kFp4 ? 1 : f == WeightFormat::kFp8Block ? 2 : f == WeightFormat::kBf16 ? 4 : 8;
      const int64_t cols = 4096;
      const int64_t n_layers = quick ? 2 : 8;
      const int64_t decode_rows = (int64_t{48} << 20) * 2 / elem_x2 / cols / 16 * 16;
      std::vector<Weight> layers;
      int64_t decode_bytes = 0;
      for (int64_t l = 0; l < n_layers; ++l) {
        layers.push_back(make_weight(f, decode_rows, cols));
        decode_bytes += layers.back().bytes();
      }
      const Weight pre = make_weight(f, 512, cols);
      std::vector<float> x(static_cast<size_t>(prefill_tokens * cols));
      std::mt19937 rng(3);
      std::normal_distribution<float> nd;
      for (float& v : x) v = round_bf16(nd(rng));
      std::vector<float> y(static_cast<size_t>(prefill_tokens * std::max<int64_t>(decode_rows, 512)));
      for (Numerics numerics : {Numerics::kReference, Numerics::kPrecise}) {
        // Each kernel run sits between runs of its yardstick, and each gets the best of the
        // rounds: on a shared machine the load changes within seconds, so a yardstick
        // measured minutes apart would make the fractions meaningless.
        double bw = 0, peak = 0, td = 1e30, tp = 1e30;
        for (int round = 0; round < repeats; ++round) {
          bw = std::max(bw, measure_read_bandwidth(pool, int64_t{1} << 28, 1));
          td = std::min(td, best_seconds(0, [&] {
            for (const Weight& m : layers) {
              linear(m.w, x.data(), cols, 1, y.data(), decode_rows, numerics, LinearCompute::kNative, pool);
            }
          }));
          peak = std::max(peak, measure_fp32_fma_peak(pool, 1));
          tp = std::min(tp, best_seconds(0, [&] {
            linear(pre.w, x.data(), cols, prefill_tokens, y.data(), 512, numerics, LinearCompute::kNative, pool);
          }));
        }
        if (hot) {
          const Weight& small = layers.front();
          WeightMatrix hw = small.w;
          hw.rows = hw.total_rows = (int64_t{4} << 20) * 2 / elem_x2 / cols / 16 * 16;
          const int64_t hot_bytes = static_cast<int64_t>(static_cast<double>(small.bytes()) * hw.rows / small.w.rows);
          double th = 1e30, hpeak = 0;
          for (int round = 0; round < repeats; ++round) {
            hpeak = std::max(hpeak, measure_fp32_fma_peak(pool, 1));
            th = std::min(th, best_seconds(20, [&] {
              for (int i = 0; i < 2; ++i) linear(hw, x.data(), cols, 1, y.data(), hw.rows, numerics, LinearCompute::kNative, pool);
            }));
          }
          const double hgbs = 2.0 * static_cast<double>(hot_bytes) / th;
          std::printf("%-5s %-9s | hot decode %6.2f GB/s, %5.2f bytes per FMA-peak cycle\n", format_name(f),
                      numerics == Numerics::kPrecise ? "precise" : "reference", hgbs / 1e9, hgbs / (hpeak / 64.0));
        }
        const double gbs = static_cast<double>(decode_bytes) / td;
        const double flops = 2.0 * 512 * cols * static_cast<double>(prefill_tokens) / tp;
        std::printf("%-5s %-9s | %6.2f GB/s of %5.2f (%5.1f%%) | %6.1f GFLOP/s of %6.1f (%5.1f%%) %4lld tok\n",
                    format_name(f), numerics == Numerics::kPrecise ? "precise" : "reference", gbs / 1e9, bw / 1e9,
                    100.0 * gbs / bw, flops / 1e9, peak / 1e9, 100.0 * flops / peak,
                    static_cast<long long>(prefill_tokens));
        std::fflush(stdout);
      }
    }
    // GGUF types: decode over 2 (--quick) or 4 matrices of ~24 MiB [.., 4096], prefill on a
    // [512, 4096] one, each between runs of its yardstick as above.
    for (GgmlType type : ggml_types) {
      const int64_t cols = 4096, n_layers = quick ? 2 : 4;
      const int64_t decode_rows = (int64_t{24} << 20) / ggml_row_bytes(type, cols) / 16 * 16;
      std::vector<Weight> layers;
      int64_t decode_bytes = 0;
      for (int64_t l = 0; l < n_layers; ++l) {
        layers.push_back(make_ggml_weight(type, decode_rows, cols));
        decode_bytes += layers.back().bytes();
      }
      const Weight pre = make_ggml_weight(type, 512, cols);
      std::vector<float> x(static_cast<size_t>(prefill_tokens * cols));
      std::mt19937 rng(3);
      std::normal_distribution<float> nd;
      for (float& v : x) v = round_bf16(nd(rng));
      std::vector<float> y(static_cast<size_t>(prefill_tokens * std::max<int64_t>(decode_rows, 512)));
      const std::string name = ggml_type_name(static_cast<uint32_t>(type));
      for (Numerics numerics : {Numerics::kReference, Numerics::kPrecise, Numerics::kInt8}) {
        double bw = 0, peak = 0, td = 1e30, tp = 1e30;
        for (int round = 0; round < std::min(repeats, 3); ++round) {
          bw = std::max(bw, measure_read_bandwidth(pool, int64_t{1} << 28, 1));
          td = std::min(td, best_seconds(0, [&] {
            for (const Weight& m : layers) {
              linear(m.w, x.data(), cols, 1, y.data(), decode_rows, numerics, LinearCompute::kNative, pool);
            }
          }));
          peak = std::max(peak, measure_fp32_fma_peak(pool, 1));
          tp = std::min(tp, best_seconds(0, [&] {
            linear(pre.w, x.data(), cols, prefill_tokens, y.data(), 512, numerics, LinearCompute::kNative, pool);
          }));
        }
        if (hot) {  // the first 4 MiB of rows, cache-resident: the kernel's arithmetic speed
          WeightMatrix hw = layers.front().w;
          hw.rows = hw.total_rows = (int64_t{4} << 20) / ggml_row_bytes(type, cols) / 16 * 16;
          const double hot_bytes = static_cast<double>(hw.rows * ggml_row_bytes(type, cols));
          double th = 1e30;
          for (int round = 0; round < std::min(repeats, 3); ++round) {
            th = std::min(th, best_seconds(20, [&] {
              for (int i = 0; i < 2; ++i) linear(hw, x.data(), cols, 1, y.data(), hw.rows, numerics, LinearCompute::kNative, pool);
            }));
          }
          std::printf("%-7s %-9s | hot decode %6.2f GB/s\n", name.c_str(), numerics_name(numerics), 2.0 * hot_bytes / th / 1e9);
        }
        const double gbs = static_cast<double>(decode_bytes) / td;
        const double flops = 2.0 * 512 * cols * static_cast<double>(prefill_tokens) / tp;
        std::printf("%-7s %-9s | %6.2f GB/s of %5.2f (%5.1f%%) | %6.1f GFLOP/s of %6.1f (%5.1f%%) %4lld tok\n",
                    name.c_str(), numerics_name(numerics), gbs / 1e9, bw / 1e9,
                    100.0 * gbs / bw, flops / 1e9, peak / 1e9, 100.0 * flops / peak,
                    static_cast<long long>(prefill_tokens));
        std::fflush(stdout);
      }
    }
  }
  // One MoE decode step of a layer: 6 active experts, FP4 w1 / w3 [2048, 7168] on the same
  // input, then w2 [7168, 2048]: 18 separate linear() calls vs two linear_group() passes.
  // The experts of a step are drawn from 24 (about 530 MiB of FP4 weights, 8 with --quick) so
  // that they come from memory, as in a real step.
  if (moe) {
    const int64_t dim = 7168, inter = 2048, n_experts = quick ? 8 : 24, active = 6;
    std::vector<Weight> w13, w2;
    for (int64_t e = 0; e < n_experts; ++e) {
      w13.push_back(make_weight(WeightFormat::kFp4, inter, dim));
      w13.push_back(make_weight(WeightFormat::kFp4, inter, dim));
      w2.push_back(make_weight(WeightFormat::kFp4, dim, inter));
    }
    std::vector<float> x(static_cast<size_t>(dim), 0.5f), h(static_cast<size_t>(2 * active * inter)),
        out(static_cast<size_t>(active * dim));
    for (int threads : thread_counts) {
      ThreadPool pool(threads);
      for (Numerics numerics : {Numerics::kReference, Numerics::kPrecise}) {
        int64_t step = 0;
        auto experts = [&](int64_t i) { return (step * 7 + i * 5) % n_experts; };  // a new set each step
        double t_single = 1e30, t_group = 1e30;
        int64_t bytes = 0;
        for (int round = 0; round < repeats; ++round) {
          bytes = 0;
          ++step;
          t_single = std::min(t_single, best_seconds(0, [&] {
            for (int64_t i = 0; i < active; ++i) {
              const int64_t e = experts(i);
              for (int k = 0; k < 2; ++k) {
                linear(w13[2 * e + k].w, x.data(), dim, 1, h.data() + (2 * i + k) * inter, inter, numerics,
                       LinearCompute::kNative, pool);
                bytes += w13[2 * e + k].bytes();
              }
            }
            for (int64_t i = 0; i < active; ++i) {
              linear(w2[experts(i)].w, h.data() + 2 * i * inter, inter, 1, out.data() + i * dim, dim, numerics,
                     LinearCompute::kNative, pool);
              bytes += w2[experts(i)].bytes();
            }
          }));
          ++step;
          t_group = std::min(t_group, best_seconds(0, [&] {
            LinearProduct first[2 * 6], second[6];
            for (int64_t i = 0; i < active; ++i) {
              const int64_t e = experts(i);
              for (int k = 0; k < 2; ++k) {
                first[2 * i + k] = LinearProduct{w13[2 * e + k].w, x.data(), dim, 1, h.data() + (2 * i + k) * inter, inter};
              }
              second[i] = LinearProduct{w2[e].w, h.data() + 2 * i * inter, inter, 1, out.data() + i * dim, dim};
            }
            linear_group(first, 2 * active, numerics, LinearCompute::kNative, pool);
            linear_group(second, active, numerics, LinearCompute::kNative, pool);
          }));
        }
        std::printf("MoE decode step, %d thread(s), %-9s: 18 calls %.3f ms (%.2f GB/s), 2 groups %.3f ms (%.2f GB/s)\n",
                    threads, numerics == Numerics::kPrecise ? "precise" : "reference", t_single * 1e3,
                    static_cast<double>(bytes) / t_single / 1e9, t_group * 1e3, static_cast<double>(bytes) / t_group / 1e9);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}

}  // namespace
}  // namespace dsv4

int main(int argc, char** argv) { return dsv4::run(argc, argv); }
