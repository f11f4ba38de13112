// Matrix products by weight format: y[t, :] = W x[t, :] for a batch of tokens.
#pragma once
#include <cstdint>

#include "ops/numerics.h"
#include "ops/weight_matrix.h"

namespace dsv4 {

class ThreadPool;  // backend/thread_pool.h

// How the reference computes a product (spec 3.0.2 and 6). Where the reference accumulates in
// FP32, this engine (kReference) accumulates exact products in double and rounds once to the output dtype
// (double -> FP32 -> BF16), as the golden data does; FP8 / FP4 GEMMs add one partial sum per
// K block (128 resp. 32, each exact) in K order.
enum class LinearCompute : uint8_t {
  // By stored format: FP8 / FP4 weights -> act_quant(x, block 128) then the block-scaled
  // GEMM, FP32 accumulation, BF16 output; BF16 weights -> BF16 x BF16, FP32 accumulation,
  // BF16 output; F32 weights -> FP32.
  kNative,
  // Weights up-cast to FP32 and inputs cast to FP32, FP32 output (router gate, compressor
  // wkv/wgate, LM head, hc_* mixes).
  kFp32,
  // Weights dequantised to BF16, BF16 x BF16 with FP32 accumulation, BF16 output, no
  // activation quantisation (the grouped wo_a product, which convert.py dequantises).
  kBf16,
};

// x: [n_tokens, w.cols] with row stride ldx; y: [n_tokens, w.rows] with row stride ldy.
// kPrecise ignores `compute`: exact FP32 weights, FP32 inputs, FP32 accumulation (SIMD lanes,
// within FP32 summation error of the double sum of linear_reference), FP32 out. kInt8 is
// kPrecise except for GGUF Q8_0 / MXFP4 weights: int8 activations, integer block products
// (ops/int8_dot.h; linear_reference computes the same bits in scalar code).
// x and y may alias (inputs are copied to a per-thread scratch first). Deterministic and
// independent of n_tokens and of the thread count: a token gives the same bits alone or in a
// batch.
void linear(const WeightMatrix& w, const float* x, int64_t ldx, int64_t n_tokens, float* y, int64_t ldy,
            Numerics numerics, LinearCompute compute = LinearCompute::kNative);

// One product of a group: y[t, :] = w x[t, :] for t < n_tokens (strides as for linear()).
struct LinearProduct {
  WeightMatrix w;
  const float* x = nullptr;
  int64_t ldx = 0;
  int64_t n_tokens = 0;
  float* y = nullptr;
  int64_t ldy = 0;
};

// Several independent products in one parallel pass, each with the bits linear() gives it:
// for many small products (the active experts' w1 / w3, then their w2) this pays one thread
// barrier instead of one per product. All inputs are prepared before any output is written,
// so outputs may alias inputs.
void linear_group(const LinearProduct* products, int64_t count, Numerics numerics, LinearCompute compute,
                  ThreadPool& pool);

// The same on the given pool (the overload above uses default_thread_pool()). Output rows are
// split between the pool's threads; the results do not depend on the thread count.
void linear(const WeightMatrix& w, const float* x, int64_t ldx, int64_t n_tokens, float* y, int64_t ldy,
            Numerics numerics, LinearCompute compute, ThreadPool& pool);

}  // namespace dsv4
