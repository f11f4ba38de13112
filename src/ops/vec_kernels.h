// Small vector kernels of the attention core and the lightning indexer (Highway, runtime
// dispatch over the same targets as linear_kernels; linear_kernels::force_target selects the
// target of both). Double accumulation of FP32 inputs: products of two floats are exact in
// double, so these equal the sequential double loops they replace up to double rounding of
// the sums (~1e-16 relative); where the sums are exact (the reference indexer's FP4 x FP4
// products) they are bit-identical.
#pragma once
#include <cstdint>

namespace dsv4 {

// out[r] = sum_e a[r * lda + e] * v[e] for r < rows, e < n, accumulated in double.
void dot_rows_f64(const float* a, int64_t rows, int64_t lda, const float* v, int64_t n, double* out);

// acc[e] += p[j] * x[j][e] for j = 0 .. count - 1 in that order, e < n (double accumulator,
// FP32 rows; P.V over a block of rows): each element's sum keeps its own order, so the bits
// are the scalar loop's.
void axpy_rows_f64(const double* p, const float* const* x, int64_t count, int64_t n, double* acc);

// The precise and int8 modes' attention core in FP32 lanes with fused multiply-adds: the same bits for the
// same inputs on one dispatch target, whatever else runs; not across targets (the lane count
// sets the summation order).
// acc[e] += p[j] * x[j][e] for j = 0 .. count - 1 in that order, e < n.
void axpy_rows_f32(const float* p, const float* const* x, int64_t count, int64_t n, float* acc);
// out[h * ldo + j] = the dot of q row h (stride ldq) and kv[j] over n values, for h < nh,
// j < nkv; each result has the same bits whatever nh and the head it starts at.
void dot_tile_f32(const float* q, int64_t nh, int64_t ldq, const float* const* kv, int64_t nkv, int64_t n, float* out,
                  int64_t ldo);
// acc row h (stride lda) += the P.V of p row h (stride ldp) over x[0 .. count): each row the bits
// of axpy_rows_f32.
void axpy_heads_f32(const float* p, int64_t nh, int64_t ldp, const float* const* x, int64_t count, int64_t n, float* acc,
                    int64_t lda);

// out[r] = sum over blocks b of ( FP32 sum_{e in b} at[e * rows + r] * v[e] ), the block sums
// added in double in block order; `at` is the transposed matrix [n, rows] (rows = heads, so
// one token's many dots need no horizontal sums). Only for inputs whose FP32 block sums are
// exact (the reference indexer's FP4 x FP4 products, checked by the caller): then it equals
// dot_rows_f64 bit for bit.
void dot_cols_blocks_f32(const float* at, int64_t rows, const float* v, int64_t n, int64_t block, double* out);

}  // namespace dsv4
