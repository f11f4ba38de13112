// Measurements of what this machine can do at best, as the yardsticks of the kernel
// benchmarks: sustained memory read bandwidth and the FP32 FMA rate.
#pragma once
#include <cstdint>

namespace dsv4 {

class ThreadPool;

// STREAM-like read probe: every thread sums its share of a `bytes` buffer (far larger than
// the caches) with SIMD loads; best of `repeats` passes. Returns bytes per second.
double measure_read_bandwidth(ThreadPool& pool, int64_t bytes = int64_t{1} << 30, int repeats = 5);

// FP32 multiply-add peak: independent FMA chains on registers (no memory traffic) on every
// thread, widest SIMD target; best of `repeats`. Returns FLOP per second (an FMA counts 2).
double measure_fp32_fma_peak(ThreadPool& pool, int repeats = 5);

// BF16 dot-product peak (AVX512-BF16 `vdpbf16ps`: pairs of BF16 products accumulated into FP32
// lanes; one instruction = 64 FLOP on 512 bits), independent chains on every thread, best of
// `repeats`. Returns FLOP per second, or 0 where the CPU has no BF16 dot instruction.
double measure_bf16_dot_peak(ThreadPool& pool, int repeats = 5);

// Cost of one empty parallel_for on the pool (the barrier), in seconds; median of many calls.
double measure_barrier_cost(ThreadPool& pool, int calls = 2000);

}  // namespace dsv4
