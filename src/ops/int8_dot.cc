// The int8 mode's block dot products; see int8_dot.h for the arithmetic. Compiled once per
// target by foreach_target.h. AVX2 and the AVX-512 targets run the 256-bit kernel below
// (byte products summed per 4 adjacent values: VNNI's vpdpbusd, else vpmaddubsw + vpmaddwd,
// which cannot saturate here: |q| <= 127, |w| <= 128); the other targets run dot_reference.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/int8_dot.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops/ggml_grids.h"
#include "ops/ggml_types.h"
#include "ops/int8_dot.h"

#if HWY_ARCH_X86
#include <immintrin.h>
#endif

#ifndef DSV4_OPS_INT8_DOT_SHARED_
#define DSV4_OPS_INT8_DOT_SHARED_
namespace dsv4::int8_dot::detail {

// Block b's weight scale and its 32 integer values (natural order).
inline float weight_block(GgmlType t, const uint8_t* blk, int8_t (&v)[kBlock]) {
  if (t == GgmlType::Q8_0) {
    std::memcpy(v, blk + 2, kBlock);
    return ggml_bytes::half_at(blk);
  }
  const int8_t* table = ggml_grids::mxfp4_values();
  for (int j = 0; j < 16; ++j) {
    v[j] = table[blk[1 + j] & 15];
    v[j + 16] = table[blk[1 + j] >> 4];
  }
  return ggml_bytes::e8m0_half(blk[0]);
}

inline float reduce_lanes(const float (&l)[kLaneBlocks]) {
  return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
}

inline float dot_row(GgmlType t, const uint8_t* row, int64_t blocks, const int8_t* q, const float* d) {
  float lanes[kLaneBlocks] = {};
  const int64_t bb = ggml_row_bytes(t, kBlock);
  for (int64_t b = 0; b < blocks; ++b) {
    int8_t v[kBlock];
    const float dw = weight_block(t, row + b * bb, v);
    int32_t isum = 0;
    for (int j = 0; j < kBlock; ++j) isum += int32_t{v[j]} * int32_t{q[b * kBlock + j]};
    const float s = dw * d[b];
    float& l = lanes[b % kLaneBlocks];
    l = std::fma(static_cast<float>(isum), s, l);
  }
  return reduce_lanes(lanes);
}

}  // namespace dsv4::int8_dot::detail
#endif  // DSV4_OPS_INT8_DOT_SHARED_

HWY_BEFORE_NAMESPACE();
namespace dsv4::int8_dot::HWY_NAMESPACE {

using linear_kernels::Problem;
using linear_kernels::kRowTile;

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
constexpr bool kVectorKernel = true;

#if HWY_TARGET <= HWY_AVX3_DL
constexpr bool kVnni = true;
#else
constexpr bool kVnni = false;
#endif

// 8 lanes of int32 sums of 4 adjacent byte products (lane j: values 4j..4j+3).
//  VNNI: u = w + 128 (unsigned) times q (signed); the block's 128 * sum(q) is subtracted
//        from its sum.
//  else: u = |w| times sign(q, w) by vpmaddubsw + vpmaddwd (|q| <= 127, |w| <= 128: the
//        16-bit pair sums cannot saturate).
HWY_INLINE __m256i DotBytes(__m256i u, __m256i q) {
  if constexpr (kVnni) {
    // EVEX-encoded by hand: Highway 1.0's AVX3_DL target enables AVX-VNNI instead of
    // AVX512-VNNI, so the intrinsic would be VEX-encoded, which CPUs with AVX512-VNNI alone
    // (Zen 4 / 5) lack.
    __m256i acc = _mm256_setzero_si256();
    asm("%{evex%} vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "v"(q));
    return acc;
  } else {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, q), _mm256_set1_epi16(1));
  }
}

HWY_INLINE float ReduceLanes(__m256 acc) {
  const __m128 d = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));  // l_j + l_{j+4}
  const __m128 e = _mm_add_ps(d, _mm_movehl_ps(d, d));                                        // + (j + 2)
  return _mm_cvtss_f32(_mm_add_ss(e, _mm_movehdup_ps(e)));                                    // e0 + e1
}

// The weight scales of 8 blocks from `base` (count of them real, the rest 0): Q8_0's F16 at
// the start of each 34-byte block, MXFP4's E8M0 as 2^(e - 128) (e8m0_half). Scalar loads
// put together in registers (faster here than vpgatherdd).
template <bool kQ8>
HWY_INLINE __m256 WeightScales(const uint8_t* base, int64_t count) {
  if constexpr (kQ8) {
    uint16_t h[kLaneBlocks] = {};  // F16 zero beyond count
    for (int64_t k = 0; k < count; ++k) h[k] = ggml_bytes::u16_at(base + k * 34);
    return _mm256_cvtph_ps(_mm_setr_epi16(static_cast<int16_t>(h[0]), static_cast<int16_t>(h[1]), static_cast<int16_t>(h[2]),
                                          static_cast<int16_t>(h[3]), static_cast<int16_t>(h[4]), static_cast<int16_t>(h[5]),
                                          static_cast<int16_t>(h[6]), static_cast<int16_t>(h[7])));
  } else {
    int c[kLaneBlocks] = {};
    for (int64_t k = 0; k < count; ++k) c[k] = base[k * 17];
    const __m256i e = _mm256_setr_epi32(c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]);
    const __m256i normal = _mm256_slli_epi32(_mm256_sub_epi32(e, _mm256_set1_epi32(1)), 23);
    const __m256i sub = _mm256_sllv_epi32(_mm256_set1_epi32(0x00200000), e);  // e < 2: subnormal
    const __m256i small = _mm256_cmpgt_epi32(_mm256_set1_epi32(2), e);
    const __m256i real = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_castsi256_ps(_mm256_and_si256(_mm256_blendv_epi8(normal, sub, small), real));
  }
}

// The weight bytes of block k (VNNI: w + 128 as unsigned bytes; else w).
template <bool kQ8>
HWY_INLINE __m256i WeightBytes(const uint8_t* blk, __m256i table) {
  if constexpr (kQ8) {
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
    return kVnni ? _mm256_xor_si256(w, _mm256_set1_epi8(static_cast<char>(0x80))) : w;
  } else {
    const __m128i codes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 1));
#if HWY_TARGET <= HWY_AVX3_DL
    // vpermb reads 5 index bits and the table holds the 16 values twice, so the bits above
    // each nibble need no masking (those shifted in from the next byte included).
    return _mm256_permutexvar_epi8(_mm256_set_m128i(_mm_srli_epi16(codes, 4), codes), table);
#else
    const __m128i low4 = _mm_set1_epi8(15);
    const __m256i idx = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(codes, 4), low4), _mm_and_si128(codes, low4));
    return _mm256_shuffle_epi8(table, idx);
#endif
  }
}

// One group of 8 blocks (count of them real) of 4 rows x TB tokens into the accumulators.
// The rows advance together two blocks at a time (4 short streams, as the other decode
// kernels read them: from DRAM this is much faster than 8 blocks of one row after another);
// the lane sums of each pair are folded at once by a tree of hadds (integer sums: the block
// sums do not depend on the order).
template <int TB, bool kQ8, bool kFull>
HWY_INLINE void GroupInt8(const uint8_t* const (&rows)[4], int64_t b0, int64_t count, int64_t row_bytes,
                          const int8_t* const (&q)[TB], const float* const (&d)[TB], int64_t padded, __m256i table,
                          __m256 (&acc)[4][TB]) {
  constexpr int64_t bb = kQ8 ? 34 : 17;
  constexpr int64_t kAhead = 1024;  // prefetch distance in each row (as linear_kernels' decode)
  __m256i h[4][TB][4];  // per row and token: hadd of the lane sums of blocks (0, 1), (2, 3), ...
  for (int64_t kp = 0; kp < kLaneBlocks / 2; ++kp) {
    // Past a row's end the prefetch goes to the same place in the row 4 further on (the next
    // pass), which the next pass would otherwise start cold.
    const int64_t o = (b0 + 2 * kp) * bb + kAhead;
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(rows[r] + (o >= row_bytes ? o + 3 * row_bytes : o)), _MM_HINT_T0);
      __m256i p[TB][2];
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t k = 2 * kp + j;
        if (!kFull && k >= count) {
          for (int t = 0; t < TB; ++t) p[t][j] = _mm256_setzero_si256();
          continue;
        }
        const __m256i w = WeightBytes<kQ8>(rows[r] + (b0 + k) * bb, table);
        for (int t = 0; t < TB; ++t) {
          const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[t] + (b0 + k) * kBlock));
          p[t][j] = kVnni ? DotBytes(w, x) : DotBytes(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
        }
      }
      for (int t = 0; t < TB; ++t) h[r][t][kp] = _mm256_hadd_epi32(p[t][0], p[t][1]);
    }
  }
  __m256 dx[TB];
  __m256i offset[TB];  // VNNI: 128 * sum(q) per block
  for (int t = 0; t < TB; ++t) {
    dx[t] = _mm256_loadu_ps(d[t] + b0);  // zero beyond the row (padding)
    if constexpr (kVnni) offset[t] = _mm256_slli_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(d[t] + padded + b0)), 7);
  }
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r) {
    const __m256 dw = WeightScales<kQ8>(rows[r] + b0 * bb, kFull ? kLaneBlocks : count);
    for (int t = 0; t < TB; ++t) {
      const __m256i a = _mm256_hadd_epi32(h[r][t][0], h[r][t][1]), b = _mm256_hadd_epi32(h[r][t][2], h[r][t][3]);
      __m256i isum = _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
      if constexpr (kVnni) isum = _mm256_sub_epi32(isum, offset[t]);
      acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dw, dx[t]), acc[r][t]);
    }
  }
}

// 4 rows x TB tokens over the whole rows, 8 blocks at a time.
template <int TB, bool kQ8>
HWY_NOINLINE void RowsInt8(const uint8_t* const (&rows)[4], int64_t blocks, const int8_t* const (&q)[TB],
                           const float* const (&d)[TB], int64_t padded, float (&out)[4][TB]) {
  constexpr int64_t bb = kQ8 ? 34 : 17;
  __m256 acc[4][TB];
  for (int r = 0; r < 4; ++r)
    for (int t = 0; t < TB; ++t) acc[r][t] = _mm256_setzero_ps();
  // MXFP4's int8 values (ggml's table), as w + 128 with VNNI.
  __m128i values = _mm_loadu_si128(reinterpret_cast<const __m128i*>(ggml_grids::mxfp4_values()));
  if constexpr (kVnni) values = _mm_xor_si128(values, _mm_set1_epi8(static_cast<char>(0x80)));
  const __m256i table = _mm256_broadcastsi128_si256(values);
  const int64_t full = blocks / kLaneBlocks * kLaneBlocks;
  for (int64_t b0 = 0; b0 < full; b0 += kLaneBlocks) {
    GroupInt8<TB, kQ8, true>(rows, b0, kLaneBlocks, blocks * bb, q, d, padded, table, acc);
  }
  if (full < blocks) GroupInt8<TB, kQ8, false>(rows, full, blocks - full, blocks * bb, q, d, padded, table, acc);
  for (int r = 0; r < 4; ++r)
    for (int t = 0; t < TB; ++t) out[r][t] = ReduceLanes(acc[r][t]);
}
#else
constexpr bool kVectorKernel = false;
#endif

void ComputeTilesInt8(const Problem& pb, int64_t tile_begin, int64_t tile_end) {
  const WeightMatrix& w = *pb.w;
  const int64_t blocks = w.cols / kBlock;
  const int64_t row_bytes = ggml_row_bytes(w.ggml_type, w.cols);
  const int8_t* xq = static_cast<const int8_t*>(pb.x);
  const int64_t r_end = std::min(w.rows, tile_end * kRowTile);
  if constexpr (!kVectorKernel) {
    for (int64_t r = tile_begin * kRowTile; r < r_end; ++r) {
      for (int64_t t = 0; t < pb.n_tokens; ++t) {
        pb.y[t * pb.ldy + r] = detail::dot_row(w.ggml_type, w.data + (w.row_begin + r) * row_bytes, blocks,
                                               xq + t * pb.x_stride, pb.x_scales + t * pb.x_scale_stride);
      }
    }
  } else {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
    const bool q8 = w.ggml_type == GgmlType::Q8_0;
    const int64_t padded = padded_blocks(w.cols);
    for (int64_t r0 = tile_begin * kRowTile; r0 < r_end; r0 += 4) {
      const int64_t rows_here = std::min<int64_t>(4, r_end - r0);
      const uint8_t* rows[4];
      for (int r = 0; r < 4; ++r) rows[r] = w.data + (w.row_begin + r0 + (r < rows_here ? r : 0)) * row_bytes;
      // Tokens two at a time (each token's lanes see the same operations whatever its partner).
      for (int64_t t0 = 0; t0 < pb.n_tokens; t0 += 2) {
        if (pb.n_tokens - t0 >= 2) {
          const int8_t* const q[2] = {xq + t0 * pb.x_stride, xq + (t0 + 1) * pb.x_stride};
          const float* const d[2] = {pb.x_scales + t0 * pb.x_scale_stride, pb.x_scales + (t0 + 1) * pb.x_scale_stride};
          float out[4][2];
          if (q8) {
            RowsInt8<2, true>(rows, blocks, q, d, padded, out);
          } else {
            RowsInt8<2, false>(rows, blocks, q, d, padded, out);
          }
          for (int64_t r = 0; r < rows_here; ++r)
            for (int t = 0; t < 2; ++t) pb.y[(t0 + t) * pb.ldy + r0 + r] = out[r][t];
        } else {
          const int8_t* const q[1] = {xq + t0 * pb.x_stride};
          const float* const d[1] = {pb.x_scales + t0 * pb.x_scale_stride};
          float out[4][1];
          if (q8) {
            RowsInt8<1, true>(rows, blocks, q, d, padded, out);
          } else {
            RowsInt8<1, false>(rows, blocks, q, d, padded, out);
          }
          for (int64_t r = 0; r < rows_here; ++r) pb.y[t0 * pb.ldy + r0 + r] = out[r][0];
        }
      }
    }
#endif
  }
}

}  // namespace dsv4::int8_dot::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace dsv4::int8_dot {

HWY_EXPORT(ComputeTilesInt8);

bool supports(const WeightMatrix& w) {
  return w.format == WeightFormat::kGgml && (w.ggml_type == GgmlType::Q8_0 || w.ggml_type == GgmlType::MXFP4) &&
         w.cols % kBlock == 0 && w.data != nullptr;
}

int64_t padded_blocks(int64_t cols) {
  const int64_t blocks = (cols + kBlock - 1) / kBlock;
  return (blocks + kLaneBlocks - 1) / kLaneBlocks * kLaneBlocks;
}

void quantize_activations(const float* x, int64_t cols, int8_t* q, float* d) {
  const int64_t blocks = cols / kBlock;
  for (int64_t b = 0; b < blocks; ++b) {
    const float* xb = x + b * kBlock;
    float amax = 0.0f;
    bool finite = true;
    for (int j = 0; j < kBlock; ++j) {
      finite = finite && std::isfinite(xb[j]);
      amax = std::max(amax, std::fabs(xb[j]));
    }
    const float db = finite ? amax / 127.0f : std::nanf("");
    const float id = finite && db != 0.0f ? 1.0f / db : 0.0f;
    for (int j = 0; j < kBlock; ++j) {
      // Round half to even by the 1.5 * 2^23 trick (|x * id| <= 127 up to one rounding; no libm
      // call, vectorisable); the clamp only guards that rounding.
      const float v = (xb[j] * id + 12582912.0f) - 12582912.0f;
      q[b * kBlock + j] = static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f));
    }
    d[b] = db;
  }
  const int64_t padded = padded_blocks(cols);
  std::fill(q + blocks * kBlock, q + padded * kBlock, int8_t{0});
  std::fill(d + blocks, d + padded, 0.0f);
  for (int64_t b = 0; b < padded; ++b) {
    int32_t s = 0;
    for (int j = 0; j < kBlock; ++j) s += q[b * kBlock + j];
    std::memcpy(d + padded + b, &s, sizeof s);
  }
}

void compute_tiles(const linear_kernels::Problem& problem, int64_t tile_begin, int64_t tile_end) {
  HWY_DYNAMIC_DISPATCH(ComputeTilesInt8)(problem, tile_begin, tile_end);
}

float dot_reference(const WeightMatrix& w, int64_t row, const int8_t* q, const float* d) {
  const int64_t blocks = w.cols / kBlock;
  const int64_t row_bytes = ggml_row_bytes(w.ggml_type, w.cols);
  return detail::dot_row(w.ggml_type, w.data + (w.row_begin + row) * row_bytes, blocks, q, d);
}

}  // namespace dsv4::int8_dot
#endif  // HWY_ONCE
