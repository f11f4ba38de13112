// SIMD kernels of linear() (Highway, runtime dispatch over the compiled x86 targets and an
// emulated scalar one). They compute output rows in tiles of kRowTile rows for all tokens:
// a tile's weights are decoded from the stored format once per K chunk into a small
// cache-resident buffer and multiplied with every token there, so a decode (1 token) streams
// the weight bytes once and a prefill (many tokens) is bound by the FMAs.
//
// Three accumulation modes, each giving every output the same bits whatever the number of
// tokens, the tile shape, the thread count or the position of the token in the batch (each
// output has its own accumulator, fed in K order):
//  * kFloat (precise mode): the exactly dequantised FP32 weights times FP32 inputs in FP32
//    lanes (lane j takes K indices = j mod lanes), lanes summed at the end. Differs from the
//    double reference by FP32 rounding only; differs between targets in the same way.
//  * kDouble (reference mode, one sum over K: BF16 / F32 weights, kFp32 and kBf16 compute):
//    the same in double lanes. Products of two floats are exact in double, so this equals the
//    sequential double sum of linear_reference up to double rounding (~1e-16 relative),
//    which changes the final FP32 / BF16 rounding only in astronomically rare ties.
//  * kDoubleBlocks (reference mode, FP8 / FP4 weights): per K block (128 resp. 32) the sum of
//    code products in double lanes, which is exact (see below) and so independent of the
//    order; lanes summed, times the power-of-two scales, added to a double total in K order:
//    bit-identical to linear_reference.
//
// Exactness of the block sums (why FP32 lanes are not enough): an E4M3 value is a multiple of
// 2^-9 below 2^9, so an E4M3 x E4M3 product is a multiple of 2^-18 below 2^18 and a sum of 128
// of them needs up to 18 + 25 = 43 significant bits: exact in double (53), not in FP32 (24).
// E4M3 x E2M1 products are multiples of 2^-10 below 2^12; 32 of them need up to 27 bits, again
// more than FP32 holds. So the reference-mode kernels accumulate in double; the integer scale
// factors are folded into one power-of-two multiplier per block.
//
// GGUF weights (WeightFormat::kGgml): rows are decoded by the ggml SIMD decoders
// (ops/ggml_kernels.h: exactly dequantize_ggml's FP32 values, rounded to BF16 for kBf16
// compute) chunk by chunk into the same tile buffer (natural column order; few tokens: 4 rows
// in 8 KiB chunks, many: the 16-row tile in 32 KiB chunks) and multiplied there like the
// native formats; for one or two tokens, Q8_0 and MXFP4 rows (the dense and expert types of
// the published files) skip the buffer: their values are formed in registers and fed to the
// same lanes in the same order, so with the same bits. Precise mode is kFloat. Reference mode
// follows ggml_role as linear_reference does: kDouble for BF16 / F32 roles, kDoubleBlocks with
// factor 1 and K blocks of 128 (FP8 role) or 32 (FP4 role) otherwise: each block's sum of
// exact double products, lanes summed, added to the total in K order. Where those block sums are exact
// the result has the bits of linear_reference: always for MXFP4 in the FP4 role (one E8M0
// scale per 32-block, E2M1 x E4M3 products, as the official FP4 above), and for Q8_0 / F16 /
// BF16 whenever the scales within a 128-block span a few binades (their values have at most
// 18 significant bits). K-quant values have up to 24 significant bits: a block's lane sum can
// differ from linear_reference's sequential one by double rounding (~1e-16 relative), which
// changes the FP32 / BF16 output only in rare ties (tested bit-equal on random weights of
// every type). Either way every output is independent of the
// batch, the token's position and the thread count.
//
// Whole FP4 rows in double (decode): a product of an E2M1 weight, an E4M3 activation code and
// the scales 2^Ew, 2^Ea is a multiple of 2^(Ew + Ea - 10) below 2^(Ew + Ea + 11.4), so the
// cols / 32 blocks of a row sum to below 2^(16.4 + log2(cols / 32) + max(Ew + Ea)) in steps
// of 2^(min(Ew + Ea) - 10). If (max - min of Ew + Ea) + ceil(log2(cols / 32)) <= 26, every
// partial sum in any order needs at most 53 bits: the row's total is exact however it is
// summed, so the sequential per-block reference sum (also exact then) has the same bits. The
// decode path then sums the scaled products lane-wise like kDouble, with no per-block
// reductions; other rows take the per-block path.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "ops/weight_matrix.h"

namespace dsv4::linear_kernels {

// kInt8: the int8 numerics mode's integer block dot products (ops/int8_dot.h), computed by
// int8_dot::compute_tiles, not by compute_tiles below.
enum class Accumulation : uint8_t { kFloat, kDouble, kDoubleBlocks, kInt8 };

constexpr int64_t kRowTile = 16;      // output rows per tile (a thread's unit of work)
constexpr int64_t kInputAlign = 64;   // packed input rows are padded with zeros to this many elements

// The passes of 4 output rows over rows [begin, end) of a tile range. A decode call reads its
// weights once from memory: with `stream`, pass i takes rows i, i + q, i + 2q, i + 3q of the
// range (q = a quarter of it), so that the 4 rows of a pass are 4 long sequential streams that
// the hardware prefetchers follow; side by side, the 4 rows would be 4 short streams that each
// start cold (the int8 Q8_0 decode kernel read 1.4x faster from DRAM this way). The rows past
// 4 quarters, and every row without `stream`, go 4 adjacent rows a pass. Each row's output
// depends on that row alone, so the grouping changes no bits.
struct RowPasses {
  int64_t begin, end, quarter;
  RowPasses(int64_t row_begin, int64_t row_end, bool stream)
      : begin(row_begin), end(row_end), quarter(stream ? (row_end - row_begin) / 4 : 0) {}
  int64_t count() const { return quarter + (end - begin - 4 * quarter + 3) / 4; }
  // The rows of pass i (those past the real ones repeat the first, their outputs discarded);
  // returns how many are real.
  int64_t rows(int64_t i, int64_t (&row)[4]) const {
    const bool adjacent = i >= quarter;
    const int64_t first = adjacent ? begin + 4 * quarter + 4 * (i - quarter) : begin + i;
    const int64_t step = adjacent ? 1 : quarter;
    const int64_t real = adjacent ? std::min<int64_t>(4, end - first) : 4;
    for (int r = 0; r < 4; ++r) row[r] = first + (r < real ? r : 0) * step;
    return real;
  }
  // Rows from the end of a row of pass i to the same row of the next pass: where a prefetch
  // past the row's end finds what the next pass reads.
  int64_t rows_skipped(int64_t i) const { return i < quarter ? 0 : 3; }
};

// Packed inputs: row stride in elements for a weight with `cols` columns.
inline int64_t packed_stride(int64_t cols) { return (cols + kInputAlign - 1) / kInputAlign * kInputAlign; }

// Position of logical column c within a packed input row. FP4 weights decode a byte group into
// its low nibbles (even columns) and high nibbles (odd columns), so the inputs are stored per
// 32-column block as the 16 even columns followed by the 16 odd ones; other formats keep the
// natural order.
inline int64_t packed_index(WeightFormat format, int64_t c) {
  if (format != WeightFormat::kFp4) return c;
  const int64_t base = c & ~int64_t{31}, j = c & 31;
  return base + (j & 1) * 16 + (j >> 1);
}

struct Problem {
  const WeightMatrix* w = nullptr;
  // Inputs [n_tokens, x_stride] in packed order, zero beyond cols, 64-byte aligned rows:
  // float for kFloat, double otherwise (reference mode: already rounded / act-quantised).
  const void* x = nullptr;
  int64_t x_stride = 0;
  int64_t n_tokens = 0;
  float* y = nullptr;
  int64_t ldy = 0;
  Accumulation accumulation = Accumulation::kFloat;
  bool bf16_output = false;
  // kDoubleBlocks: max - min of the binary exponents of all act_quant scales of the call. With
  // the weight scales' span it bounds the dynamic range of a row's products, which decides
  // whether a whole FP4 row sums exactly in double lanes (then no per-block sums are needed).
  int act_exponent_span = 0;
  // kDoubleBlocks: the same inputs as FP32 (exact: q * 2^Ea), for the FP32-product decode.
  const float* x_f32 = nullptr;
  // GGUF weights under kBf16 compute: the decoded values rounded to BF16 (the other formats'
  // values are exact in BF16).
  bool bf16_weights = false;
  // kInt8: x holds the tokens' int8 values (x_stride bytes apart), x_scales their block scales.
  const float* x_scales = nullptr;
  int64_t x_scale_stride = 0;
};

// Whether the kernels handle this weight: FP8 needs 128 x 128 scale blocks, FP4 cols % 32 == 0,
// GGUF weights a dequantizable ggml type with whole blocks per row.
bool supports(const WeightMatrix& w);

// Computes output rows [tile_begin * kRowTile, min(tile_end * kRowTile, rows)) for all tokens.
// Thread-safe for disjoint tiles; uses per-thread scratch that grows to the largest shape seen.
void compute_tiles(const Problem& problem, int64_t tile_begin, int64_t tile_end);

// The dispatch targets compiled into the kernels that this CPU supports (Highway target bits),
// for tests and benchmarks; force_target(t) makes later calls use target t (0: the best one
// again). Not thread-safe: call it while no kernel runs.
std::vector<int64_t> available_targets();
void force_target(int64_t target);
std::string target_name(int64_t target);
std::string current_target_name();

// Scratch memory of one thread, 64-byte aligned, grown on demand and never shrunk, so that a
// steady decode loop allocates nothing.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { std::free(data_); }
  template <typename T>
  T* get(int64_t count) {
    const size_t bytes = (static_cast<size_t>(count) * sizeof(T) + 63) / 64 * 64;
    if (bytes > size_) {
      std::free(data_);
      data_ = std::aligned_alloc(64, bytes);
      if (data_ == nullptr) throw std::bad_alloc();
      size_ = bytes;
    }
    return static_cast<T*>(data_);
  }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace dsv4::linear_kernels
