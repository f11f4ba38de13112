// The products of the int8 numerics mode (Numerics::kInt8) on GGUF Q8_0, MXFP4, Q2_K and
// IQ2_XXS weights:
// activations quantised to signed bytes per 32-block (as ggml's Q8_0), integer dot products
// per block, as ggml's CPU backend computes these types. Opt-in; the other two modes never
// come here.
//
// The arithmetic, the same bits on every dispatch target and for every batch / thread count:
//  * activations, per 32-block of a token: amax = max |x|, d = amax / 127 (FP32, kept as FP32,
//    where ggml rounds it to F16), q = round-half-even(x * (1 / d)) in [-127, 127] (0 when d is
//    0; a non-finite x makes d NaN);
//  * weight blocks: Q8_0 as stored (F16 scale dw, int8 values); MXFP4 as ggml's int8 table
//    (2 x E2M1) with dw = 2^(e - 128) (ggml_bytes::e8m0_half); IQ2_XXS: each 32-value group
//    of a super-block as its signed grid values with dw = d * (0.5 + s) * 0.25 (FP32, as ggml's
//    dequantisation forms it);
//  * per block b: isum_b = sum of the 32 integer products (exact, |isum| < 2^24, so exact in
//    FP32), s_b = dw_b * d_b (one FP32 rounding), lane (b mod 8) += isum_b * s_b by a fused
//    multiply-add; at the end the 8 lanes are summed as ((l0 + l4) + (l2 + l6)) +
//    ((l1 + l5) + (l3 + l7)).
//  * Q2_K (16-value halves with 4-bit scale sc and min m, super-block F16 d and dmin): per
//    block, isum_b = sc_0 * sum(q x values, first half) + sc_1 * (the same, second half) and
//    msum_b = m_0 * sum(q, first half) + m_1 * sum(q, second half) (exact integers); lane
//    (b mod 8) += isum_b * (d * d_b), then += msum_b * -(dmin * d_b), each by a fused
//    multiply-add.
// dot_reference is that arithmetic in plain scalar code (the test oracle); the AVX2 / AVX-512
// kernels compute the block sums with byte dot products (VNNI where there is one) and take 8
// blocks per vector of lanes.
#pragma once
#include <cstdint>

#include "ops/linear_kernels.h"
#include "ops/weight_matrix.h"

namespace dsv4::int8_dot {

constexpr int64_t kBlock = 32;       // values per activation / weight block
constexpr int64_t kLaneBlocks = 8;   // accumulator lanes (blocks b and b + 8 share a lane)

// Whether a weight takes the int8 path: GGUF Q8_0, MXFP4, Q2_K or IQ2_XXS with whole blocks
// (K-quant / IQ: super-blocks) per row.
bool supports(const WeightMatrix& w);

// Quantised activations of one token: cols / 32 blocks (cols a multiple of 32).
// q: padded_values(cols) bytes; d: scale_words(cols) 4-byte words, the padded_blocks(cols)
// FP32 block scales, then as many int32 sums of each block's q (the kernels' offset trick),
// then as many pairs of int16 sums of each block's 16-value halves (Q2_K's mins), low half in
// the low 16 bits. Padding zero.
int64_t padded_blocks(int64_t cols);
inline int64_t padded_values(int64_t cols) { return padded_blocks(cols) * kBlock; }
inline int64_t scale_words(int64_t cols) { return 3 * padded_blocks(cols); }
void quantize_activations(const float* x, int64_t cols, int8_t* q, float* d);

// Output rows [tile_begin * kRowTile, min(tile_end * kRowTile, rows)) of a problem with
// accumulation kInt8 (Problem::x: tokens' q at stride x_stride bytes, x_scales: their d at
// stride x_scale_stride floats). Thread-safe for disjoint tiles.
void compute_tiles(const linear_kernels::Problem& problem, int64_t tile_begin, int64_t tile_end);

// The arithmetic above for one row of w (a row index of the view) and one token, in scalar code.
float dot_reference(const WeightMatrix& w, int64_t row, const int8_t* q, const float* d);

}  // namespace dsv4::int8_dot
