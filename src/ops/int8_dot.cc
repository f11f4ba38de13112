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
#include "ops/ggml_tables.h"
#include "ops/ggml_types.h"
#include "ops/int8_dot.h"

#if HWY_ARCH_X86
#include <immintrin.h>
#endif

#ifndef DSV4_OPS_INT8_DOT_SHARED_
#define DSV4_OPS_INT8_DOT_SHARED_
namespace dsv4::int8_dot::detail {

// Block b's weight scale and its 32 integer values (natural order), for the types with one
// scale per 32 values (all but Q2_K).
inline float weight_block(GgmlType t, const uint8_t* row, int64_t b, int8_t (&v)[kBlock]) {
  if (t == GgmlType::Q8_0) {
    const uint8_t* blk = row + b * 34;
    std::memcpy(v, blk + 2, kBlock);
    return ggml_bytes::half_at(blk);
  }
  if (t == GgmlType::IQ2_XXS) {  // 8 blocks per 66-byte super-block: F16 d, then 8 bytes a block
    const uint8_t* sb = row + (b / 8) * 66;
    const uint8_t* g = sb + 2 + 8 * (b % 8);  // 4 grid indexes, then signs (4 x 7 bits) and scale (4 bits)
    const uint32_t meta = ggml_bytes::u32_at(g + 4);
    for (int l = 0; l < 4; ++l) {
      const uint16_t grid = ggml_grids::iq2xxs()[g[l]];
      const uint8_t signs = ggml_grids::iq2_signs()[(meta >> (7 * l)) & 127];
      for (int j = 0; j < 8; ++j) {
        const int8_t value = static_cast<int8_t>(ggml_grids::iq2_values()[(grid >> (2 * j)) & 3]);
        v[8 * l + j] = (signs >> j) & 1 ? static_cast<int8_t>(-value) : value;
      }
    }
    return ggml_bytes::half_at(sb) * (0.5f + static_cast<float>(meta >> 28)) * 0.25f;
  }
  const uint8_t* blk = row + b * 17;  // MXFP4
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

// Q2_K block b (k = b mod 8 of its 84-byte super-block: scales[16], qs[64], F16 d, F16 dmin):
// values (qs[32 (k / 4) + l] >> 2 (k mod 4)) & 3, l = 0..31; the 16-value halves take
// scales[2k] and scales[2k + 1] (low nibble: scale, high nibble: min).
inline void q2k_block(const uint8_t* row, int64_t b, const int8_t* q, int32_t* isum, int32_t* msum, float* dd, float* dmin) {
  const uint8_t* sb = row + (b / 8) * 84;
  const int64_t k = b % 8;
  const uint8_t* qs = sb + 16 + 32 * (k / 4);
  const int shift = static_cast<int>(2 * (k % 4));
  *isum = 0;
  *msum = 0;
  for (int half = 0; half < 2; ++half) {
    int32_t s = 0, x = 0;
    for (int l = 16 * half; l < 16 * half + 16; ++l) {
      s += ((qs[l] >> shift) & 3) * int32_t{q[l]};
      x += q[l];
    }
    const uint8_t sc = sb[2 * k + half];
    *isum += (sc & 15) * s;
    *msum += (sc >> 4) * x;
  }
  *dd = ggml_bytes::half_at(sb + 80);
  *dmin = ggml_bytes::half_at(sb + 82);
}

inline float dot_row(GgmlType t, const uint8_t* row, int64_t blocks, const int8_t* q, const float* d) {
  float lanes[kLaneBlocks] = {};
  for (int64_t b = 0; b < blocks; ++b) {
    float& l = lanes[b % kLaneBlocks];
    if (t == GgmlType::Q2_K) {
      int32_t isum, msum;
      float dd, dmin;
      q2k_block(row, b, q + b * kBlock, &isum, &msum, &dd, &dmin);
      l = std::fma(static_cast<float>(isum), dd * d[b], l);
      l = std::fma(static_cast<float>(msum), -(dmin * d[b]), l);
      continue;
    }
    int8_t v[kBlock];
    const float dw = weight_block(t, row, b, v);
    int32_t isum = 0;
    for (int j = 0; j < kBlock; ++j) isum += int32_t{v[j]} * int32_t{q[b * kBlock + j]};
    const float s = dw * d[b];
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
// Up to this many tokens a call streams its weights from memory (decode, speculative verify).
constexpr int64_t kStreamTokens = 4;

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

// The weight types of the vector kernel. Every group of 8 blocks of a K-quant or IQ row is one
// 256-value super-block.
enum class Kind { kQ8_0, kMxfp4, kIq2Xxs, kQ2K };
// Signed weight values (VNNI: offset by 128); Q2_K's are unsigned (value x scale, <= 45).
template <Kind K>
constexpr bool kSignedWeights = K != Kind::kQ2K;
template <Kind K>
constexpr int64_t kGroupBytes = K == Kind::kQ8_0 ? 8 * 34 : K == Kind::kMxfp4 ? 8 * 17 : K == Kind::kIq2Xxs ? 66 : 84;
// Byte position of block b in a row (exact for Q8_0 / MXFP4; the prefetch position for the others).
template <Kind K>
constexpr int64_t ByteOf(int64_t b) {
  return b * kGroupBytes<K> / kLaneBlocks;
}

// The weight scales of the 8 blocks from b0 (count of them real, the rest 0): Q8_0's F16 at
// the start of each 34-byte block, MXFP4's E8M0 as 2^(e - 128) (e8m0_half), IQ2_XXS's
// d * (0.5 + s) * 0.25 as in weight_block; Q2_K: d (its dmin is applied apart). Scalar loads put
// together in registers (faster here than vpgatherdd).
template <Kind K>
HWY_INLINE __m256 WeightScales(const uint8_t* row, int64_t b0, int64_t count) {
  if constexpr (K == Kind::kQ8_0) {
    const uint8_t* base = row + b0 * 34;
    uint16_t h[kLaneBlocks] = {};  // F16 zero beyond count
    for (int64_t k = 0; k < count; ++k) h[k] = ggml_bytes::u16_at(base + k * 34);
    return _mm256_cvtph_ps(_mm_setr_epi16(static_cast<int16_t>(h[0]), static_cast<int16_t>(h[1]), static_cast<int16_t>(h[2]),
                                          static_cast<int16_t>(h[3]), static_cast<int16_t>(h[4]), static_cast<int16_t>(h[5]),
                                          static_cast<int16_t>(h[6]), static_cast<int16_t>(h[7])));
  } else if constexpr (K == Kind::kMxfp4) {
    const uint8_t* base = row + b0 * 17;
    int c[kLaneBlocks] = {};
    for (int64_t k = 0; k < count; ++k) c[k] = base[k * 17];
    const __m256i e = _mm256_setr_epi32(c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]);
    const __m256i normal = _mm256_slli_epi32(_mm256_sub_epi32(e, _mm256_set1_epi32(1)), 23);
    const __m256i sub = _mm256_sllv_epi32(_mm256_set1_epi32(0x00200000), e);  // e < 2: subnormal
    const __m256i small = _mm256_cmpgt_epi32(_mm256_set1_epi32(2), e);
    const __m256i real = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_castsi256_ps(_mm256_and_si256(_mm256_blendv_epi8(normal, sub, small), real));
  } else if constexpr (K == Kind::kIq2Xxs) {
    const uint8_t* sb = row + (b0 / kLaneBlocks) * 66;
    const float d = ggml_bytes::half_at(sb);
    float s[kLaneBlocks];
    for (int k = 0; k < kLaneBlocks; ++k) s[k] = d * (0.5f + static_cast<float>(sb[2 + 8 * k + 7] >> 4)) * 0.25f;
    return _mm256_loadu_ps(s);
  } else {
    return _mm256_set1_ps(ggml_bytes::half_at(row + (b0 / kLaneBlocks) * 84 + 80));
  }
}

// The weight bytes of block b (signed kinds: w, or w + 128 as unsigned bytes with VNNI;
// Q2_K: value x scale of its 16-value half, unsigned).
template <Kind K>
HWY_INLINE __m256i WeightBytes(const uint8_t* row, int64_t b, __m256i table, const ggml_tables::Tables& tabs) {
  const __m256i offset = _mm256_set1_epi8(static_cast<char>(0x80));
  if constexpr (K == Kind::kQ8_0) {
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + b * 34 + 2));
    return kVnni ? _mm256_xor_si256(w, offset) : w;
  } else if constexpr (K == Kind::kMxfp4) {
    const __m128i codes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + b * 17 + 1));
#if HWY_TARGET <= HWY_AVX3_DL
    // vpermb reads 5 index bits and the table holds the 16 values twice, so the bits above
    // each nibble need no masking (those shifted in from the next byte included).
    return _mm256_permutexvar_epi8(_mm256_set_m128i(_mm_srli_epi16(codes, 4), codes), table);
#else
    const __m128i low4 = _mm_set1_epi8(15);
    const __m256i idx = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(codes, 4), low4), _mm_and_si128(codes, low4));
    return _mm256_shuffle_epi8(table, idx);
#endif
  } else if constexpr (K == Kind::kIq2Xxs) {
    const uint8_t* g = row + (b / kLaneBlocks) * 66 + 2 + 8 * (b % kLaneBlocks);
    const uint32_t meta = ggml_bytes::u32_at(g + 4);
#if HWY_TARGET <= HWY_AVX3
    // ksigns_iq2xs of the four 7-bit sign fields at once: the fields spread to bytes (pdep),
    // bit 7 of each byte = the parity of its 7 bits; the set bits negate their values.
    const uint32_t bits = _pdep_u32(meta, 0x7F7F7F7Fu);
    uint32_t parity = bits ^ (bits >> 4);
    parity ^= parity >> 2;
    parity ^= parity >> 1;
    const __mmask32 negate = bits | ((parity & 0x01010101u) << 7);
    const __m256i grid = _mm256_setr_epi64x(static_cast<int64_t>(tabs.iq2xxs[g[0]]), static_cast<int64_t>(tabs.iq2xxs[g[1]]),
                                            static_cast<int64_t>(tabs.iq2xxs[g[2]]), static_cast<int64_t>(tabs.iq2xxs[g[3]]));
    const __m256i w = _mm256_mask_sub_epi8(grid, negate, _mm256_setzero_si256(), grid);
#else
    uint64_t v[4];
    for (int l = 0; l < 4; ++l) v[l] = ggml_tables::negate_bytes(tabs.iq2xxs[g[l]], tabs.iq2_sign_mask[(meta >> (7 * l)) & 127]);
    const __m256i w = _mm256_setr_epi64x(static_cast<int64_t>(v[0]), static_cast<int64_t>(v[1]), static_cast<int64_t>(v[2]),
                                         static_cast<int64_t>(v[3]));
#endif
    return kVnni ? _mm256_xor_si256(w, offset) : w;
  } else {
    const uint8_t* sb = row + (b / kLaneBlocks) * 84;
    const int64_t k = b % kLaneBlocks;
    const __m256i qs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sb + 16 + 32 * (k / 4)));
    const __m256i u = _mm256_and_si256(_mm256_srl_epi16(qs, _mm_cvtsi32_si128(static_cast<int>(2 * (k % 4)))), _mm256_set1_epi8(3));
    // value x scale by a per-lane table (0, s, 2s, 3s): 3 x 15 < 256, no carries between bytes.
    const __m256i scaled = _mm256_setr_epi32(static_cast<int>((sb[2 * k] & 15u) * 0x03020100u), 0, 0, 0,
                                             static_cast<int>((sb[2 * k + 1] & 15u) * 0x03020100u), 0, 0, 0);
    return _mm256_shuffle_epi8(scaled, u);
  }
}

// One group of 8 blocks (count of them real) of 4 rows x TB tokens into the accumulators.
// The rows advance together two blocks at a time (4 short streams, as the other decode
// kernels read them: from DRAM this is much faster than 8 blocks of one row after another);
// the lane sums of each pair are folded at once by a tree of hadds (integer sums: the block
// sums do not depend on the order).
template <int TB, Kind K, bool kFull>
HWY_INLINE void GroupInt8(const uint8_t* const (&rows)[4], int64_t b0, int64_t count, int64_t row_bytes,
                          int64_t skip_bytes, const int8_t* const (&q)[TB], const float* const (&d)[TB], int64_t padded,
                          __m256i table, const ggml_tables::Tables& tabs, __m256 (&acc)[4][TB]) {
  constexpr int64_t kAhead = 1024;  // prefetch distance in each row (as linear_kernels' decode)
  __m256i h[4][TB][4];  // per row and token: hadd of the lane sums of blocks (0, 1), (2, 3), ...
  for (int64_t kp = 0; kp < kLaneBlocks / 2; ++kp) {
    // Past a row's end the prefetch goes on at the same row of the next pass, skip_bytes on
    // (see RowPasses). About once per cache line: when block 2kp or 2kp + 1 starts one.
    const int64_t at = ByteOf<K>(b0 + 2 * kp), o = at + kAhead;
    const bool line = (at & 63) < 2 * kGroupBytes<K> / kLaneBlocks;
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      if (line)
        _mm_prefetch(reinterpret_cast<const char*>(rows[r] + o + (o >= row_bytes ? skip_bytes : 0)), _MM_HINT_T0);
      __m256i p[TB][2];
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t k = 2 * kp + j;
        if (!kFull && k >= count) {
          for (int t = 0; t < TB; ++t) p[t][j] = _mm256_setzero_si256();
          continue;
        }
        const __m256i w = WeightBytes<K>(rows[r], b0 + k, table, tabs);
        for (int t = 0; t < TB; ++t) {
          const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[t] + (b0 + k) * kBlock));
          if constexpr (kSignedWeights<K>) {
            p[t][j] = kVnni ? DotBytes(w, x) : DotBytes(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
          } else {
            p[t][j] = DotBytes(w, x);
          }
        }
      }
      for (int t = 0; t < TB; ++t) h[r][t][kp] = _mm256_hadd_epi32(p[t][0], p[t][1]);
    }
  }
  __m256 dx[TB];
  __m256i offset[TB];  // signed kinds with VNNI: 128 * sum(q) per block
  __m256i half_sums[TB];  // Q2_K: the int16 sums of q per 16 values
  for (int t = 0; t < TB; ++t) {
    dx[t] = _mm256_loadu_ps(d[t] + b0);  // zero beyond the row (padding)
    if constexpr (kVnni && kSignedWeights<K>) {
      offset[t] = _mm256_slli_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(d[t] + padded + b0)), 7);
    }
    if constexpr (K == Kind::kQ2K) half_sums[t] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(d[t] + 2 * padded + b0));
  }
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r) {
    const __m256 dw = WeightScales<K>(rows[r], b0, kFull ? kLaneBlocks : count);
    __m256 dmin = _mm256_setzero_ps();
    __m256i mins = _mm256_setzero_si256();
    if constexpr (K == Kind::kQ2K) {
      const uint8_t* sb = rows[r] + (b0 / kLaneBlocks) * 84;
      dmin = _mm256_set1_ps(ggml_bytes::half_at(sb + 82));
      const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(sb));
      mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc, 4), _mm_set1_epi8(15)));
    }
    for (int t = 0; t < TB; ++t) {
      const __m256i a = _mm256_hadd_epi32(h[r][t][0], h[r][t][1]), b = _mm256_hadd_epi32(h[r][t][2], h[r][t][3]);
      __m256i isum = _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
      if constexpr (kVnni && kSignedWeights<K>) isum = _mm256_sub_epi32(isum, offset[t]);
      acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dw, dx[t]), acc[r][t]);
      if constexpr (K == Kind::kQ2K) {
        // block k: min(2k) x sum(first 16 q) + min(2k + 1) x sum(last 16 q), exact in int32
        const __m256i msum = _mm256_madd_epi16(mins, half_sums[t]);
        acc[r][t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_mul_ps(dmin, dx[t]), acc[r][t]);
      }
    }
  }
}

// 4 rows x TB tokens over the whole rows, 8 blocks at a time.
template <int TB, Kind K>
HWY_NOINLINE void RowsInt8(const uint8_t* const (&rows)[4], int64_t blocks, int64_t skip_bytes,
                           const int8_t* const (&q)[TB], const float* const (&d)[TB], int64_t padded,
                           float (&out)[4][TB]) {
  __m256 acc[4][TB];
  for (int r = 0; r < 4; ++r)
    for (int t = 0; t < TB; ++t) acc[r][t] = _mm256_setzero_ps();
  // MXFP4's int8 values (ggml's table), as w + 128 with VNNI.
  __m128i values = _mm_loadu_si128(reinterpret_cast<const __m128i*>(ggml_grids::mxfp4_values()));
  if constexpr (kVnni) values = _mm_xor_si128(values, _mm_set1_epi8(static_cast<char>(0x80)));
  const __m256i table = _mm256_broadcastsi128_si256(values);
  const ggml_tables::Tables& tabs = ggml_tables::tables();
  const int64_t row_bytes = ByteOf<K>(blocks);
  const int64_t full = blocks / kLaneBlocks * kLaneBlocks;  // K-quant / IQ rows: always all of them
  for (int64_t b0 = 0; b0 < full; b0 += kLaneBlocks) {
    GroupInt8<TB, K, true>(rows, b0, kLaneBlocks, row_bytes, skip_bytes, q, d, padded, table, tabs, acc);
  }
  if constexpr (K == Kind::kQ8_0 || K == Kind::kMxfp4) {
    if (full < blocks)
      GroupInt8<TB, K, false>(rows, full, blocks - full, row_bytes, skip_bytes, q, d, padded, table, tabs, acc);
  }
  for (int r = 0; r < 4; ++r)
    for (int t = 0; t < TB; ++t) out[r][t] = ReduceLanes(acc[r][t]);
}

// RowsInt8 for the weight type.
template <int TB>
HWY_INLINE void RowsOfType(GgmlType type, const uint8_t* const (&rows)[4], int64_t blocks, int64_t skip_bytes,
                           const int8_t* const (&q)[TB], const float* const (&d)[TB], int64_t padded,
                           float (&out)[4][TB]) {
  switch (type) {
    case GgmlType::Q8_0:
      return RowsInt8<TB, Kind::kQ8_0>(rows, blocks, skip_bytes, q, d, padded, out);
    case GgmlType::MXFP4:
      return RowsInt8<TB, Kind::kMxfp4>(rows, blocks, skip_bytes, q, d, padded, out);
    case GgmlType::IQ2_XXS:
      return RowsInt8<TB, Kind::kIq2Xxs>(rows, blocks, skip_bytes, q, d, padded, out);
    default:
      return RowsInt8<TB, Kind::kQ2K>(rows, blocks, skip_bytes, q, d, padded, out);
  }
}
#else
constexpr bool kVectorKernel = false;
#endif

// quantize_activations in vector lanes (N <= 16 float lanes on every target built: a 32-value
// half holds whole vectors). Element-wise IEEE operations and exact maxima / integer sums, so
// every target gives the same bytes.
void QuantizeActivations(const float* HWY_RESTRICT x, int64_t cols, int8_t* HWY_RESTRICT q, float* HWY_RESTRICT d) {
  namespace hn = hwy::HWY_NAMESPACE;
  const hn::ScalableTag<float> df;
  const hn::Rebind<int32_t, decltype(df)> di;
  const hn::Rebind<int8_t, decltype(df)> d8;
  constexpr int64_t kHalf = kBlock / 2;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  static_assert(HWY_MAX_BYTES / 4 <= kHalf);  // N <= 16 lanes: a half holds whole vectors
  const int64_t blocks = cols / kBlock, padded = padded_blocks(cols);
  for (int64_t b = 0; b < blocks; ++b) {
    const float* xb = x + b * kBlock;
    auto amax = hn::Zero(df);
    auto finite = hn::FirstN(df, N);
    for (int64_t i = 0; i < kBlock; i += N) {
      const auto v = hn::LoadU(df, xb + i);
      amax = hn::Max(amax, hn::Abs(v));
      finite = hn::And(finite, hn::IsFinite(v));
    }
    const bool all_finite = hn::AllTrue(df, finite);
    const float m = hn::GetLane(hn::MaxOfLanes(df, amax));
    const float db = all_finite ? m / 127.0f : std::nanf("");
    const float id = all_finite && db != 0.0f ? 1.0f / db : 0.0f;
    int32_t half_sum[2] = {0, 0};
    for (int64_t i = 0; i < kBlock; i += N) {
      // Round half to even by adding and subtracting 1.5 * 2^23 (|x * id| <= 127 up to one
      // rounding); the clamp only guards that rounding. A non-finite block stores zeros.
      const auto big = hn::Set(df, 12582912.0f);
      auto v = hn::Sub(hn::Add(hn::Mul(hn::LoadU(df, xb + i), hn::Set(df, id)), big), big);
      v = hn::Min(hn::Max(v, hn::Set(df, -127.0f)), hn::Set(df, 127.0f));
      const auto qi = all_finite ? hn::ConvertTo(di, v) : hn::Zero(di);
      hn::StoreU(hn::DemoteTo(d8, qi), d8, q + b * kBlock + i);
      half_sum[i / kHalf] += hn::GetLane(hn::SumOfLanes(di, qi));
    }
    d[b] = db;
    const int32_t sum = half_sum[0] + half_sum[1];
    std::memcpy(d + padded + b, &sum, sizeof sum);
    // The sums of the 16-value halves as two int16 (|sum| <= 16 x 127), low half first.
    const uint32_t pair = static_cast<uint16_t>(half_sum[0]) | static_cast<uint32_t>(static_cast<uint16_t>(half_sum[1])) << 16;
    std::memcpy(d + 2 * padded + b, &pair, sizeof pair);
  }
  std::fill(q + blocks * kBlock, q + padded * kBlock, int8_t{0});
  std::fill(d + blocks, d + padded, 0.0f);
  std::fill(d + padded + blocks, d + 2 * padded, 0.0f);      // zero int32 sums
  std::fill(d + 2 * padded + blocks, d + 3 * padded, 0.0f);  // and int16 pairs
}

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
    const int64_t padded = padded_blocks(w.cols);
    // Decode and short verify calls stream their rows (RowPasses); prefill reuses each row for
    // many tokens from the cache.
    const linear_kernels::RowPasses passes(tile_begin * kRowTile, r_end, pb.n_tokens <= kStreamTokens);
    for (int64_t i = 0; i < passes.count(); ++i) {
      int64_t row_of[4];
      const int64_t rows_here = passes.rows(i, row_of);
      const int64_t skip_bytes = passes.rows_skipped(i) * row_bytes;
      const uint8_t* rows[4];
      for (int r = 0; r < 4; ++r) rows[r] = w.data + (w.row_begin + row_of[r]) * row_bytes;
      // Tokens two at a time (each token's lanes see the same operations whatever its partner).
      int64_t t0 = 0;
      for (; t0 + 2 <= pb.n_tokens; t0 += 2) {
        const int8_t* const q[2] = {xq + t0 * pb.x_stride, xq + (t0 + 1) * pb.x_stride};
        const float* const d[2] = {pb.x_scales + t0 * pb.x_scale_stride, pb.x_scales + (t0 + 1) * pb.x_scale_stride};
        float out[4][2];
        RowsOfType<2>(w.ggml_type, rows, blocks, skip_bytes, q, d, padded, out);
        for (int64_t r = 0; r < rows_here; ++r)
          for (int t = 0; t < 2; ++t) pb.y[(t0 + t) * pb.ldy + row_of[r]] = out[r][t];
      }
      if (t0 < pb.n_tokens) {
        const int8_t* const q[1] = {xq + t0 * pb.x_stride};
        const float* const d[1] = {pb.x_scales + t0 * pb.x_scale_stride};
        float out[4][1];
        RowsOfType<1>(w.ggml_type, rows, blocks, skip_bytes, q, d, padded, out);
        for (int64_t r = 0; r < rows_here; ++r) pb.y[t0 * pb.ldy + row_of[r]] = out[r][0];
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
HWY_EXPORT(QuantizeActivations);

bool supports(const WeightMatrix& w) {
  if (w.format != WeightFormat::kGgml || w.data == nullptr) return false;
  switch (w.ggml_type) {
    case GgmlType::Q8_0:
    case GgmlType::MXFP4:
      return w.cols % kBlock == 0;
    case GgmlType::Q2_K:
    case GgmlType::IQ2_XXS:
      return w.cols % (kBlock * kLaneBlocks) == 0;
    default:
      return false;
  }
}

int64_t padded_blocks(int64_t cols) {
  const int64_t blocks = (cols + kBlock - 1) / kBlock;
  return (blocks + kLaneBlocks - 1) / kLaneBlocks * kLaneBlocks;
}

void quantize_activations(const float* x, int64_t cols, int8_t* q, float* d) {
  HWY_DYNAMIC_DISPATCH(QuantizeActivations)(x, cols, q, d);
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
