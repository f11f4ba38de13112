// Highway kernels of linear(); see linear_kernels.h for the numerics. This file is compiled
// once per target by foreach_target.h.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/linear_kernels.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/cache_control.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>

#include "ops/formats.h"
#include "ops/ggml_grids.h"
#include "ops/ggml_kernels.h"
#include "ops/linear_kernels.h"

// The zero-padded row tails are written only when a row has a partial last vector and read
// only then; GCC cannot see that through Highway's scalar loads.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

HWY_BEFORE_NAMESPACE();
namespace dsv4::linear_kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// ---------------------------------------------------------------------------------------
// Decoding N stored weights into N float lanes. The E4M3 / E2M1 codes are not looked up:
// their sign, exponent and mantissa bits are moved into an FP16 bit pattern whose value is the
// code times 2^-8 (E4M3: exponent bias 7 vs 15) resp. 2^-14 (E2M1: bias 1), subnormal codes
// landing on FP16 subnormals with the same scaling; the hardware FP16 -> FP32 conversion
// (F16C) then gives normal FP32 numbers. (Moving the bits straight into FP32 would give FP32
// subnormals for the subnormal codes, and multiplying those costs a microcode assist of ~100
// cycles on current x86 cores: FP4's +-0.5 is in most vectors.) Exact for every code except
// the E4M3 NaN (0x7F / 0xFF), which reads as +-480 (checkpoints hold no NaN weights). The
// power of two is folded into the block scale.

template <class DF>
HWY_INLINE hn::Vec<DF> E4m3Bits(DF df, const uint8_t* HWY_RESTRICT p) {
  const hn::Rebind<uint16_t, DF> d16;
  const hn::Rebind<hwy::float16_t, DF> dh;
  const hn::Rebind<uint8_t, DF> d8;
  const auto b = hn::PromoteTo(d16, hn::LoadU(d8, p));
  const auto magnitude = hn::And(hn::ShiftLeft<7>(b), hn::Set(d16, uint16_t{0x3F80}));
  const auto sign = hn::And(hn::ShiftLeft<8>(b), hn::Set(d16, uint16_t{0x8000}));
  return hn::PromoteTo(df, hn::BitCast(dh, hn::Or(magnitude, sign)));
}

// Low nibbles (even columns) or high nibbles (odd columns) of N packed bytes.
template <bool kHigh, class DF>
HWY_INLINE hn::Vec<DF> E2m1Bits(DF df, const uint8_t* HWY_RESTRICT p) {
  const hn::Rebind<uint16_t, DF> d16;
  const hn::Rebind<hwy::float16_t, DF> dh;
  const hn::Rebind<uint8_t, DF> d8;
  const auto b = hn::PromoteTo(d16, hn::LoadU(d8, p));
  const auto mask = hn::Set(d16, uint16_t{0x0E00});
  const auto sign_bit = hn::Set(d16, uint16_t{0x8000});
  hn::Vec<decltype(d16)> h;
  if constexpr (kHigh) {
    h = hn::Or(hn::And(hn::ShiftLeft<5>(b), mask), hn::And(hn::ShiftLeft<8>(b), sign_bit));
  } else {
    h = hn::Or(hn::And(hn::ShiftLeft<9>(b), mask), hn::And(hn::ShiftLeft<12>(b), sign_bit));
  }
  return hn::PromoteTo(df, hn::BitCast(dh, h));
}

// AVX-512 VBMI targets: 64 E4M3 codes -> 4 x 16 float lanes with the values of E4m3Bits, by
// two 128-entry byte tables (vpermi2b on the 7 magnitude bits) giving the upper two bytes of
// each float (the values have at most 4 significant bits, so the lower two bytes are zero),
// the sign ORed into the top byte, and one byte shuffle per output vector that places the two
// bytes into the dwords. 7 shuffle-class instructions per 64 weights instead of ~6 per 16.
#undef DSV4_E4M3_TABLES  // this file is compiled once per target
#undef DSV4_FP4_DOUBLE_TABLES
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3_DL
#define DSV4_E4M3_TABLES 1
struct E4m3Tables {
  __m512i lo0, lo1, hi0, hi1;  // byte 2 / byte 3 of the float for magnitudes 0..63, 64..127
  __m512i place[4];            // byte indices: dword j of vector v <- (lo, hi) of code 16 v + j
  // The same for the values as doubles (bytes 6 and 7; the low 6 bytes are zero).
  __m512i dlo0, dlo1, dhi0, dhi1;
  __m512i dplace[8];  // qword j of vector v <- (lo, hi) of code 8 v + j
};
inline const E4m3Tables& e4m3_tables() {
  static const E4m3Tables t = [] {
    E4m3Tables r;
    const hn::ScalableTag<float> df;
    alignas(64) uint8_t codes[128];
    alignas(64) uint32_t bits[128];
    alignas(64) uint8_t lo[128], hi[128], place[4][64], dlo[128], dhi[128], dplace[8][64];
    for (int i = 0; i < 128; ++i) codes[i] = static_cast<uint8_t>(i);
    for (int i = 0; i < 128; i += 16) hn::Store(E4m3Bits(df, codes + i), df, reinterpret_cast<float*>(bits + i));
    for (int i = 0; i < 128; ++i) {
      if ((bits[i] & 0xFFFF) != 0) std::abort();  // cannot happen: 4 significant bits, normal floats
      lo[i] = static_cast<uint8_t>(bits[i] >> 16);
      hi[i] = static_cast<uint8_t>(bits[i] >> 24);
      float f;
      std::memcpy(&f, &bits[i], 4);
      const double d = f;
      uint64_t db;
      std::memcpy(&db, &d, 8);
      if ((db & 0xFFFFFFFFFFFFull) != 0) std::abort();
      dlo[i] = static_cast<uint8_t>(db >> 48);
      dhi[i] = static_cast<uint8_t>(db >> 56);
    }
    for (int v = 0; v < 8; ++v) {
      for (int j = 0; j < 8; ++j) {
        for (int k = 0; k < 6; ++k) dplace[v][8 * j + k] = 0;  // zeroed by the mask
        dplace[v][8 * j + 6] = static_cast<uint8_t>(8 * v + j);
        dplace[v][8 * j + 7] = static_cast<uint8_t>(64 + 8 * v + j);
      }
      r.dplace[v] = _mm512_load_si512(dplace[v]);
    }
    r.dlo0 = _mm512_load_si512(dlo);
    r.dlo1 = _mm512_load_si512(dlo + 64);
    r.dhi0 = _mm512_load_si512(dhi);
    r.dhi1 = _mm512_load_si512(dhi + 64);
    for (int v = 0; v < 4; ++v) {
      for (int j = 0; j < 16; ++j) {
        place[v][4 * j] = place[v][4 * j + 1] = 0;  // zeroed by the mask
        place[v][4 * j + 2] = static_cast<uint8_t>(16 * v + j);
        place[v][4 * j + 3] = static_cast<uint8_t>(64 + 16 * v + j);
      }
      r.place[v] = _mm512_load_si512(place[v]);
    }
    r.lo0 = _mm512_load_si512(lo);
    r.lo1 = _mm512_load_si512(lo + 64);
    r.hi0 = _mm512_load_si512(hi);
    r.hi1 = _mm512_load_si512(hi + 64);
    return r;
  }();
  return t;
}
// Checked once: the tables reproduce E4m3Bits only if every value's low 16 bits are zero.
HWY_INLINE void E4m3x64(const E4m3Tables& t, const uint8_t* HWY_RESTRICT p, __m512 (&out)[4]) {
  const __m512i codes = _mm512_loadu_si512(p);
  const __m512i lo = _mm512_permutex2var_epi8(t.lo0, codes, t.lo1);
  __m512i hi = _mm512_permutex2var_epi8(t.hi0, codes, t.hi1);
  hi = _mm512_ternarylogic_epi32(hi, codes, _mm512_set1_epi8(static_cast<char>(0x80)), 0xF8);  // hi | (codes & 0x80)
  constexpr __mmask64 kUpper = 0xCCCCCCCCCCCCCCCCull;
  for (int v = 0; v < 4; ++v) out[v] = _mm512_castsi512_ps(_mm512_maskz_permutex2var_epi8(kUpper, lo, t.place[v], hi));
}
// The same 64 codes as 8 x 8 double lanes (exact: the values of E4m3Bits widened).
HWY_INLINE void E4m3x64Double(const E4m3Tables& t, const uint8_t* HWY_RESTRICT p, __m512d (&out)[8]) {
  const __m512i codes = _mm512_loadu_si512(p);
  const __m512i lo = _mm512_permutex2var_epi8(t.dlo0, codes, t.dlo1);
  __m512i hi = _mm512_permutex2var_epi8(t.dhi0, codes, t.dhi1);
  hi = _mm512_ternarylogic_epi32(hi, codes, _mm512_set1_epi8(static_cast<char>(0x80)), 0xF8);  // hi | (codes & 0x80)
  constexpr __mmask64 kTop2 = 0xC0C0C0C0C0C0C0C0ull;
  for (int v = 0; v < 8; ++v) out[v] = _mm512_castsi512_pd(_mm512_maskz_permutex2var_epi8(kTop2, lo, t.dplace[v], hi));
}
#endif

template <class DF>
HWY_INLINE hn::Vec<DF> Bf16Values(DF df, const uint8_t* HWY_RESTRICT p) {
  const hn::Rebind<uint32_t, DF> du;
  const hn::Rebind<uint16_t, DF> d16;
  const auto h = hn::LoadU(d16, reinterpret_cast<const uint16_t*>(p));
  return hn::BitCast(df, hn::ShiftLeft<16>(hn::PromoteTo(du, h)));
}

template <class DF>
HWY_INLINE hn::Vec<DF> F32Values(DF df, const uint8_t* HWY_RESTRICT p) {
  return hn::LoadU(df, reinterpret_cast<const float*>(p));
}

// Float lanes -> accumulation lanes (identity for float, exact widening for double).
template <class DA, class VF>
HWY_INLINE hn::Vec<DA> Widen(DA da, VF v) {
  if constexpr (sizeof(hn::TFromD<DA>) == 4) {
    return v;
  } else {
    return hn::PromoteTo(da, v);
  }
}

// 2^e as a float for -126 <= e <= 127.
inline float pow2f(int e) {
  const uint32_t bits = static_cast<uint32_t>(e + 127) << 23;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Multiplier turning the code bit patterns of one block (code * 2^-bias_shift) into exact
// weights code * 2^(S - 127). One FP32 multiply is exact (a single rounding of the exact
// product, as dequantize_rows does) when 2^(S - 127 + bias_shift) is a finite float; else two.
struct FloatFactor {
  float first;
  float second;  // 1 when one multiply suffices
};
inline FloatFactor float_factor(uint8_t s, int bias_shift) {
  const int e = static_cast<int>(s) - 127 + bias_shift;
  if (s != 0xFF && e <= 127) return {pow2f(e), 1.0f};
  return {pow2f(bias_shift), e8m0_to_f32(s)};
}
inline double double_factor(uint8_t s, int bias_shift) {
  if (s == 0xFF) return std::numeric_limits<double>::quiet_NaN();
  const uint64_t bits = static_cast<uint64_t>(static_cast<int>(s) - 127 + bias_shift + 1023) << 52;
  double d;
  std::memcpy(&d, &bits, 8);
  return d;
}

constexpr int kE4m3Shift = 8;   // E4M3 bit pattern = code * 2^-8
constexpr int kE2m1Shift = 14;  // E2M1 bit pattern = code * 2^-14

// K block of the kDoubleBlocks partial sums (the reference's, linear_reference.cc): FP8 128,
// FP4 32; a GGUF weight those of the format it stands for (32 unless FP8).
inline int64_t KBlock(const WeightMatrix& w) {
  if (w.format == WeightFormat::kFp4) return 32;
  if (w.format == WeightFormat::kGgml && w.ggml_role != WeightFormat::kFp8Block) return 32;
  return 128;
}

// Per-thread FP32 buffer for GGUF rows decoded before widening to double.
inline float* GgmlScratch(int64_t n) {
  thread_local AlignedBuffer buffer;
  return buffer.get<float>(n);
}

// ---------------------------------------------------------------------------------------
// Decodes elements [e0, e1) of one stored row (e0 a multiple of 128) into dst in packed order,
// ceil((e1 - e0) / N) vectors, zero beyond the row's end. For kDoubleBlocks dst gets the code
// bit patterns and factors[b] the multiplier of the b-th scale block of the chunk.
// GGUF rows: the exact values of dequantize_ggml from the SIMD decoders (ggml_kernels.h),
// rounded to BF16 where the product asks for it (bf16_weights), in natural order; for
// kDoubleBlocks the values themselves with factor 1 per K block.
template <Accumulation kAcc, class DA>
void DecodeRowChunk(DA da, const WeightMatrix& w, int64_t row, int64_t e0, int64_t e1, hn::TFromD<DA>* HWY_RESTRICT dst,
                    double* HWY_RESTRICT factors, bool bf16_weights = false) {
  using T = hn::TFromD<DA>;
  const hn::Rebind<float, DA> df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(da));
  const int64_t cols = w.cols;
  switch (w.format) {
    case WeightFormat::kFp8Block: {
      const int64_t scale_cols = (cols + 127) / 128;
      const uint8_t* codes = w.data + row * cols;
      const uint8_t* scales = w.scale + (row / 128) * scale_cols;
      for (int64_t b0 = e0; b0 < e1; b0 += 128) {
        const uint8_t s = scales[b0 / 128];
        const int64_t b1 = std::min(e1, b0 + 128);
        const int64_t full_end = b0 + (b1 - b0) / N * N;
        T* out = dst + (b0 - e0);
        alignas(64) uint8_t tail[64];
        const int64_t tail_n = b1 - full_end;
        if (tail_n > 0) {
          std::memset(tail, 0, sizeof(tail));
          std::memcpy(tail, codes + full_end, static_cast<size_t>(tail_n));
        }
        const int64_t nvec = (b1 - b0 + N - 1) / N;
        auto bits_at = [&](int64_t v) {
          const int64_t e = b0 + v * N;
          return E4m3Bits(df, e < full_end ? codes + e : tail);
        };
        if constexpr (kAcc == Accumulation::kFloat) {
          const FloatFactor f = float_factor(s, kE4m3Shift);
          const auto f1 = hn::Set(df, f.first), f2 = hn::Set(df, f.second);
          if (f.second == 1.0f) {
            for (int64_t v = 0; v < nvec; ++v) hn::Store(hn::Mul(bits_at(v), f1), da, out + v * N);
          } else {
            for (int64_t v = 0; v < nvec; ++v) hn::Store(hn::Mul(hn::Mul(bits_at(v), f1), f2), da, out + v * N);
          }
        } else if constexpr (kAcc == Accumulation::kDouble) {
          const auto f = hn::Set(da, double_factor(s, kE4m3Shift));
          for (int64_t v = 0; v < nvec; ++v) hn::Store(hn::Mul(Widen(da, bits_at(v)), f), da, out + v * N);
        } else {
          factors[(b0 - e0) / 128] = double_factor(s, kE4m3Shift);
          for (int64_t v = 0; v < nvec; ++v) hn::Store(Widen(da, bits_at(v)), da, out + v * N);
        }
      }
      break;
    }
    case WeightFormat::kFp4: {
      // cols % 32 == 0 and N <= 16, so a vector never leaves its 32-column block.
      const uint8_t* packed = w.data + row * (cols / 2);
      const uint8_t* scales = w.scale + row * (cols / 32);
      for (int64_t b0 = e0; b0 < e1; b0 += 32) {
        const uint8_t s = scales[b0 / 32];
        T* out = dst + (b0 - e0);
        const uint8_t* bytes = packed + b0 / 2;
        for (int64_t o = 0; o < 32; o += N) {
          const auto bits = o < 16 ? E2m1Bits<false>(df, bytes + o) : E2m1Bits<true>(df, bytes + (o - 16));
          if constexpr (kAcc == Accumulation::kFloat) {
            const FloatFactor f = float_factor(s, kE2m1Shift);
            auto x = hn::Mul(bits, hn::Set(df, f.first));
            if (f.second != 1.0f) x = hn::Mul(x, hn::Set(df, f.second));
            hn::Store(x, da, out + o);
          } else if constexpr (kAcc == Accumulation::kDouble) {
            hn::Store(hn::Mul(Widen(da, bits), hn::Set(da, double_factor(s, kE2m1Shift))), da, out + o);
          } else {
            hn::Store(Widen(da, bits), da, out + o);
          }
        }
        if constexpr (kAcc == Accumulation::kDoubleBlocks) factors[(b0 - e0) / 32] = double_factor(s, kE2m1Shift);
      }
      break;
    }
    case WeightFormat::kBf16:
    case WeightFormat::kF32: {
      const bool bf16 = w.format == WeightFormat::kBf16;
      const int64_t esize = bf16 ? 2 : 4;
      const uint8_t* src = w.data + row * cols * esize;
      const int64_t full_end = e0 + (e1 - e0) / N * N;
      alignas(64) uint8_t tail[64 * 4] = {};
      if (e1 > full_end) std::memcpy(tail, src + full_end * esize, static_cast<size_t>((e1 - full_end) * esize));
      for (int64_t e = e0; e < e1; e += N) {
        const uint8_t* p = e < full_end ? src + e * esize : tail;
        const auto v = bf16 ? Bf16Values(df, p) : F32Values(df, p);
        hn::Store(Widen(da, v), da, dst + (e - e0));
      }
      break;
    }
    case WeightFormat::kGgml: {
      const int64_t n = e1 - e0, padded = (n + N - 1) / N * N;
      const uint8_t* src = w.data + row * ggml_row_bytes(w.ggml_type, cols);
      float* f = sizeof(T) == 4 ? reinterpret_cast<float*>(dst) : GgmlScratch(padded);
      ggml_kernels::decode(w.ggml_type, src, e0, e1, f);
      if (bf16_weights) {
        for (int64_t i = 0; i < n; ++i) f[i] = round_bf16(f[i]);
      }
      std::fill(f + n, f + padded, 0.0f);
      if constexpr (sizeof(T) != 4) {
        for (int64_t i = 0; i < padded; i += N) hn::Store(Widen(da, hn::Load(df, f + i)), da, dst + i);
      }
      if constexpr (kAcc == Accumulation::kDoubleBlocks) {
        const int64_t kb = KBlock(w);
        std::fill(factors, factors + (n + kb - 1) / kb, 1.0);
      }
      break;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Micro-kernels: 4 weight rows x TB tokens over nvec vectors of one K chunk. The weight rows
// sit in the decode buffer (stride ws), the tokens in the packed inputs (stride xs).

// kFloat / kDouble: one vector accumulator per (row, token), kept in acc between chunks.
template <int TB, class DA>
HWY_INLINE void MicroPlain(DA da, const hn::TFromD<DA>* HWY_RESTRICT w, int64_t ws, const hn::TFromD<DA>* HWY_RESTRICT x,
                           int64_t xs, int64_t nvec, hn::TFromD<DA>* HWY_RESTRICT acc, int64_t acc_row_stride) {
  using V = hn::Vec<DA>;
  const int64_t N = static_cast<int64_t>(hn::Lanes(da));
  V a[4][TB];
  for (int r = 0; r < 4; ++r) {
    for (int t = 0; t < TB; ++t) a[r][t] = hn::Load(da, acc + r * acc_row_stride + t * N);
  }
  for (int64_t o = 0; o < nvec * N; o += N) {
    const V w0 = hn::Load(da, w + o), w1 = hn::Load(da, w + ws + o);
    const V w2 = hn::Load(da, w + 2 * ws + o), w3 = hn::Load(da, w + 3 * ws + o);
    for (int t = 0; t < TB; ++t) {
      const V xv = hn::Load(da, x + t * xs + o);
      a[0][t] = hn::MulAdd(w0, xv, a[0][t]);
      a[1][t] = hn::MulAdd(w1, xv, a[1][t]);
      a[2][t] = hn::MulAdd(w2, xv, a[2][t]);
      a[3][t] = hn::MulAdd(w3, xv, a[3][t]);
    }
  }
  for (int r = 0; r < 4; ++r) {
    for (int t = 0; t < TB; ++t) hn::Store(a[r][t], da, acc + r * acc_row_stride + t * N);
  }
}

// kDoubleBlocks: per scale block an exact partial sum, then total += partial * factor in K
// order (the product is exact, so fused or not gives the same).
template <int TB, class DA>
HWY_INLINE void MicroBlocks(DA da, const double* HWY_RESTRICT w, int64_t ws, const double* HWY_RESTRICT x, int64_t xs,
                            int64_t nvec, int64_t vec_per_block, const double* HWY_RESTRICT factors,
                            int64_t factor_stride, double* HWY_RESTRICT total, int64_t total_row_stride) {
  using V = hn::Vec<DA>;
  const int64_t N = static_cast<int64_t>(hn::Lanes(da));
  double sums[4][TB];
  for (int r = 0; r < 4; ++r) {
    for (int t = 0; t < TB; ++t) sums[r][t] = total[r * total_row_stride + t];
  }
  for (int64_t v0 = 0, blk = 0; v0 < nvec; v0 += vec_per_block, ++blk) {
    const int64_t v1 = std::min(nvec, v0 + vec_per_block);
    V a[4][TB];
    for (int r = 0; r < 4; ++r) {
      for (int t = 0; t < TB; ++t) a[r][t] = hn::Zero(da);
    }
    for (int64_t o = v0 * N; o < v1 * N; o += N) {
      const V w0 = hn::Load(da, w + o), w1 = hn::Load(da, w + ws + o);
      const V w2 = hn::Load(da, w + 2 * ws + o), w3 = hn::Load(da, w + 3 * ws + o);
      for (int t = 0; t < TB; ++t) {
        const V xv = hn::Load(da, x + t * xs + o);
        a[0][t] = hn::MulAdd(w0, xv, a[0][t]);
        a[1][t] = hn::MulAdd(w1, xv, a[1][t]);
        a[2][t] = hn::MulAdd(w2, xv, a[2][t]);
        a[3][t] = hn::MulAdd(w3, xv, a[3][t]);
      }
    }
    for (int r = 0; r < 4; ++r) {
      const double f = factors[r * factor_stride + blk];
      for (int t = 0; t < TB; ++t) {
        const double partial = hn::GetLane(hn::SumOfLanes(da, a[r][t]));
        sums[r][t] = sums[r][t] + partial * f;
      }
    }
  }
  for (int r = 0; r < 4; ++r) {
    for (int t = 0; t < TB; ++t) total[r * total_row_stride + t] = sums[r][t];
  }
}

// ---------------------------------------------------------------------------------------
// Fused path for one or two tokens (decode): 4 weight rows are decoded vector by vector in
// registers and multiplied at once, streaming each row once from memory with no buffer. It
// forms exactly the same weight values and sums, in the same order, as the buffered path, so
// a token gets the same bits in either.

// The decode loops read 4 weight rows as 4 sequential streams with much arithmetic per byte,
// so the out-of-order window alone keeps too few cache misses in flight; a software prefetch
// this far ahead in each row raised FP4 decode from DRAM by ~25% here (FP8: neutral).
constexpr int64_t kPrefetchBytes = 1024;
// Prefetches kPrefetchBytes ahead of byte `offset` in each of the 4 rows of a pass; past a
// row's end, in the same row of the next pass, so that a new pass does not start its streams
// cold.
HWY_INLINE void PrefetchRows(const uint8_t* const (&data)[4], int64_t offset, int64_t row_bytes) {
  const int64_t o = offset + kPrefetchBytes;
  // Adjacent rows (or a padded pass): that row is 4 rows on; streams (RowPasses): the next row.
  const int64_t skip = o < row_bytes || data[1] - data[0] > row_bytes ? 0 : 3 * row_bytes;
  for (int r = 0; r < 4; ++r) hwy::Prefetch(data[r] + o + skip);
}

// E2M1 values, for the in-register table lookup of FP4 codes on 16-lane targets.
alignas(64) constexpr float kE2m1Values[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                                               -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

// 2^(s - 127) as a float (E8M0 decoding without a libm call on the common path).
inline float e8m0_value(uint8_t s) { return (s != 0 && s != 0xFF) ? pow2f(static_cast<int>(s) - 127) : e8m0_to_f32(s); }

// The 4 weight rows of one decode pass as byte streams, the setup shared by the decode
// kernels: each row's first code byte and first scale byte (FP4: one E8M0 scale per 32
// columns of the row; FP8: one per 128x128 tile, so the tile row's; BF16 / F32: none), the
// code bytes of one row, and the zero-padded copy of each row's last, partial vector of
// `tail_bytes` (FP8 / BF16 / F32 rows whose length is not a multiple of the vector).
template <WeightFormat kFormat>
struct RowStreams {
  static constexpr int64_t kElemBytes = kFormat == WeightFormat::kF32 ? 4 : kFormat == WeightFormat::kBf16 ? 2 : 1;
  const uint8_t* data[4];
  const uint8_t* scales[4] = {};
  int64_t row_bytes;
  RowStreams(const WeightMatrix& w, const int64_t (&row)[4]) {
    const int64_t cols = w.cols;
    row_bytes = kFormat == WeightFormat::kFp4 ? cols / 2 : cols * kElemBytes;
    for (int r = 0; r < 4; ++r) {
      data[r] = w.data + row[r] * row_bytes;
      if constexpr (kFormat == WeightFormat::kFp4) {
        scales[r] = w.scale + row[r] * (cols / 32);
      } else if constexpr (kFormat == WeightFormat::kFp8Block) {
        scales[r] = w.scale + (row[r] / 128) * ((cols + 127) / 128);
      }
    }
  }
  // The scale byte of the block that holds column c of row r (FP4 / FP8).
  uint8_t scale(int r, int64_t c) const { return scales[r][kFormat == WeightFormat::kFp4 ? c / 32 : c / 128]; }
  // Prefetches ahead of byte `offset` of the rows (see PrefetchRows).
  void prefetch(int64_t offset) const { PrefetchRows(data, offset, row_bytes); }
  // Copies columns [full_end, cols) of each row, zero-padded, into tail (no-op if none).
  template <size_t kTailBytes>
  void copy_tails(int64_t full_end, int64_t cols, uint8_t (&tail)[4][kTailBytes]) const {
    if (full_end >= cols) return;
    for (int r = 0; r < 4; ++r) {
      std::memset(tail[r], 0, kTailBytes);
      std::memcpy(tail[r], data[r] + full_end * kElemBytes, static_cast<size_t>((cols - full_end) * kElemBytes));
    }
  }
};

// Zeroes the accumulators of the 4 rows x TB tokens of a pass.
template <class D, class V, int TB>
HWY_INLINE void ZeroAccumulators(D d, V (&a)[4][TB]) {
  for (int r = 0; r < 4; ++r) {
    for (int t = 0; t < TB; ++t) a[r][t] = hn::Zero(d);
  }
}

template <Accumulation kAcc, WeightFormat kFormat, int TB, class DA>
HWY_NOINLINE void FusedRows(DA da, const WeightMatrix& w, const int64_t (&row)[4], const hn::TFromD<DA>* HWY_RESTRICT x,
                            int64_t xs, double (&out)[4][TB]) {
  using T = hn::TFromD<DA>;
  using V = hn::Vec<DA>;
  const hn::Rebind<float, DA> df;
  constexpr int64_t N = static_cast<int64_t>(hn::MaxLanes(da));
  constexpr bool kBlocks = kAcc == Accumulation::kDoubleBlocks;
  constexpr int64_t kElemBytes = RowStreams<kFormat>::kElemBytes;
  // FP4 with FP32 lanes on 16-lane targets: the codes index a scaled value table in a register.
  constexpr bool kFp4Table = kFormat == WeightFormat::kFp4 && kAcc == Accumulation::kFloat && N == 16;
  const int64_t cols = w.cols;
  const int64_t block = kFormat == WeightFormat::kFp4 ? 32 : kFormat == WeightFormat::kFp8Block ? 128 : cols;

  const RowStreams<kFormat> rs(w, row);
  const uint8_t* const(&data)[4] = rs.data;
  // The last, partial vector of a row (FP8 / BF16 / F32) comes from a zero-padded copy.
  const int64_t full_end = kFormat == WeightFormat::kFp4 ? cols : cols / N * N;
  alignas(64) uint8_t tail[4][64 * 4];
  rs.copy_tails(full_end, cols, tail);

  V a[4][TB];  // kFloat / kDouble: sums over the row; kDoubleBlocks: the block's partial sums
  double total[4][TB] = {};
  ZeroAccumulators(da, a);
  for (int64_t b0 = 0; b0 < cols; b0 += block) {
    const int64_t b1 = std::min(cols, b0 + block);
    // Per-row multipliers of this block (see DecodeRowChunk).
    FloatFactor ff[4] = {};
    double fd[4] = {};
    hn::Vec<decltype(df)> table[4];
    for (int r = 0; r < 4; ++r) {
      if constexpr (kFormat == WeightFormat::kFp4 || kFormat == WeightFormat::kFp8Block) {
        const uint8_t s = rs.scale(r, b0);
        const int shift = kFormat == WeightFormat::kFp4 ? kE2m1Shift : kE4m3Shift;
        if constexpr (kFp4Table) {
          table[r] = hn::Mul(hn::Load(df, kE2m1Values), hn::Set(df, e8m0_value(s)));
        } else if constexpr (kAcc == Accumulation::kFloat) {
          ff[r] = float_factor(s, shift);
        } else {
          fd[r] = double_factor(s, shift);
        }
      }
    }
    // The vector loop, with the second multiply of FloatFactor compiled in only for the rare
    // blocks that need it (a test inside the loop costs a compare and branch per vector).
    if constexpr (kFp4Table) {
      // One 32-column block is one load of 16 bytes: low nibbles (even columns) and high
      // nibbles (odd columns) index the block's scaled value table.
      const hn::Rebind<uint32_t, decltype(df)> du;
      const hn::Rebind<int32_t, decltype(df)> di;
      const hn::Rebind<uint8_t, decltype(df)> d8;
      V lo[4], hi[4];
      if ((b0 & 127) == 0) {  // once per cache line of the rows
        rs.prefetch(b0 / 2);
      }
      for (int r = 0; r < 4; ++r) {
        const auto b = hn::PromoteTo(du, hn::LoadU(d8, data[r] + b0 / 2));
        lo[r] = hn::TableLookupLanes(table[r], hn::IndicesFromVec(df, hn::BitCast(di, hn::And(b, hn::Set(du, 15u)))));
        hi[r] = hn::TableLookupLanes(table[r], hn::IndicesFromVec(df, hn::BitCast(di, hn::ShiftRight<4>(b))));
      }
      for (int t = 0; t < TB; ++t) {
        const V x0 = hn::Load(da, x + t * xs + b0), x1 = hn::Load(da, x + t * xs + b0 + 16);
        for (int r = 0; r < 4; ++r) a[r][t] = hn::MulAdd(lo[r], x0, a[r][t]);
        for (int r = 0; r < 4; ++r) a[r][t] = hn::MulAdd(hi[r], x1, a[r][t]);
      }
      continue;
    }
    auto vector_loop = [&](auto two_muls) {
#ifdef DSV4_E4M3_TABLES
      if constexpr (kFormat == WeightFormat::kFp8Block && kAcc == Accumulation::kFloat && N == 16) {
        if ((b1 - b0) % 64 == 0 && b1 <= full_end) {  // 64 codes per step, same sums in the same order
          const E4m3Tables& tabs = e4m3_tables();
          for (int64_t e = b0; e < b1; e += 64) {
            PrefetchRows(data, e, cols);
            V xv[TB][4];
            for (int t = 0; t < TB; ++t) {
              for (int v = 0; v < 4; ++v) xv[t][v] = hn::Load(da, x + t * xs + e + 16 * v);
            }
            for (int r = 0; r < 4; ++r) {
              __m512 raw[4];
              E4m3x64(tabs, data[r] + e, raw);
              const V f1 = hn::Set(df, ff[r].first);
              for (int v = 0; v < 4; ++v) {
                V wv = hn::Mul(V{raw[v]}, f1);
                if constexpr (decltype(two_muls)::value) wv = hn::Mul(wv, hn::Set(df, ff[r].second));
                for (int t = 0; t < TB; ++t) a[r][t] = hn::MulAdd(wv, xv[t][v], a[r][t]);
              }
            }
          }
          return;
        }
      }
#endif
      for (int64_t e = b0; e < b1; e += N) {
        if (((e * kElemBytes) & 63) == 0) {  // once per cache line of the rows
          rs.prefetch(kFormat == WeightFormat::kFp4 ? e / 2 : e * kElemBytes);
        }
        V wv[4];
        for (int r = 0; r < 4; ++r) {
          if constexpr (kFormat == WeightFormat::kFp4) {
            // Packed order: per 32-column block the 16 even columns (low nibbles), then the odd.
            const int64_t o = e - b0;
            const uint8_t* p = data[r] + b0 / 2 + (o & 15);
            const auto bits = o < 16 ? E2m1Bits<false>(df, p) : E2m1Bits<true>(df, p);
            if constexpr (kAcc == Accumulation::kFloat) {
              auto v = hn::Mul(bits, hn::Set(df, ff[r].first));
              if constexpr (decltype(two_muls)::value) v = hn::Mul(v, hn::Set(df, ff[r].second));
              wv[r] = v;
            } else if constexpr (kAcc == Accumulation::kDouble) {
              wv[r] = hn::Mul(Widen(da, bits), hn::Set(da, fd[r]));
            } else {
              wv[r] = Widen(da, bits);
            }
          } else {
            const uint8_t* p = e < full_end ? data[r] + e * kElemBytes : tail[r];
            if constexpr (kFormat == WeightFormat::kFp8Block) {
              const auto bits = E4m3Bits(df, p);
              if constexpr (kAcc == Accumulation::kFloat) {
                auto v = hn::Mul(bits, hn::Set(df, ff[r].first));
                if constexpr (decltype(two_muls)::value) v = hn::Mul(v, hn::Set(df, ff[r].second));
                wv[r] = v;
              } else if constexpr (kAcc == Accumulation::kDouble) {
                wv[r] = hn::Mul(Widen(da, bits), hn::Set(da, fd[r]));
              } else {
                wv[r] = Widen(da, bits);
              }
            } else if constexpr (kFormat == WeightFormat::kBf16) {
              wv[r] = Widen(da, Bf16Values(df, p));
            } else {
              wv[r] = Widen(da, F32Values(df, p));
            }
          }
        }
        for (int t = 0; t < TB; ++t) {
          const V xv = hn::Load(da, x + t * xs + e);
          for (int r = 0; r < 4; ++r) a[r][t] = hn::MulAdd(wv[r], xv, a[r][t]);
        }
      }
    };
    bool two = false;
    for (int r = 0; r < 4; ++r) two = two || ff[r].second != 1.0f;
    if (two) {
      vector_loop(std::true_type());
    } else {
      vector_loop(std::false_type());
    }
    if constexpr (kBlocks) {
      for (int r = 0; r < 4; ++r) {
        for (int t = 0; t < TB; ++t) {
          total[r][t] = total[r][t] + hn::GetLane(hn::SumOfLanes(da, a[r][t])) * fd[r];
          a[r][t] = hn::Zero(da);
        }
      }
    }
  }
  for (int r = 0; r < 4; ++r) {
    for (int t = 0; t < TB; ++t) {
      out[r][t] = kBlocks ? total[r][t] : static_cast<double>(hn::GetLane(hn::SumOfLanes(da, a[r][t])));
    }
  }
  (void)sizeof(T);
}

// Reference-mode decode of FP8 / FP4 rows with FP32 products: an E4M3 (bit pattern, times
// 2^-8) or E2M1 weight code times an act_quant input q * 2^Ea (4 significant bits each, at
// least 2^-48 in magnitude since 2^Ea >= 2^-22) is exact in FP32, so the products are formed
// 16 at a time in FP32 lanes and only widened to double for the sums, which are exact as in
// the double kernels: FP8 per 128-block (then scaled and added in K order), FP4 over whole
// rows that pass the span test (each product scaled by its block's 2^Ew in the double FMA).
// Same bits as FusedRows<kDoubleBlocks> at half the double work.
#if HWY_TARGET == HWY_SCALAR
// Not used on the one-lane target (FusedTiles checks kF32Products).
template <WeightFormat kFormat, int TB>
void FusedRowsF32Products(const WeightMatrix&, const int64_t (&)[4], const float*, int64_t, double (&)[4][TB]) {}
#else
template <WeightFormat kFormat, int TB>
HWY_NOINLINE void FusedRowsF32Products(const WeightMatrix& w, const int64_t (&row)[4], const float* HWY_RESTRICT x,
                                       int64_t xs, double (&out)[4][TB]) {
  const hn::ScalableTag<float> df;
  const hn::Half<decltype(df)> dh;
  const hn::Repartition<double, decltype(df)> dd;
  using VD = hn::Vec<decltype(dd)>;
  using VF = hn::Vec<decltype(df)>;
  constexpr int64_t NF = static_cast<int64_t>(hn::MaxLanes(df));
  constexpr bool kFp8 = kFormat == WeightFormat::kFp8Block;
  const int64_t cols = w.cols;
  const int64_t block = kFp8 ? 128 : 32;
  const RowStreams<kFormat> rs(w, row);
  const uint8_t* const(&data)[4] = rs.data;
  const int64_t full_end = kFp8 ? cols / NF * NF : cols;
  alignas(64) uint8_t tail[4][64];
  rs.copy_tails(full_end, cols, tail);
  const VF code_scale = hn::Set(df, pow2f(kE2m1Shift));  // E2M1 bit pattern -> code value
  VD acc[4][TB];
  double total[4][TB] = {};
  ZeroAccumulators(dd, acc);
  for (int64_t b0 = 0; b0 < cols; b0 += block) {
    const int64_t b1 = std::min(cols, b0 + block);
    double f[4];
    for (int r = 0; r < 4; ++r) f[r] = double_factor(rs.scale(r, b0), kFp8 ? kE4m3Shift : 0);
#ifdef DSV4_E4M3_TABLES
    if constexpr (kFp8 && NF == 16) {
      if ((b1 - b0) % 64 == 0 && b1 <= full_end) {  // 64 codes per step (exact block sums: any order)
        const E4m3Tables& tabs = e4m3_tables();
        for (int64_t e = b0; e < b1; e += 64) {
          rs.prefetch(e);
          VF xv[TB][4];
          for (int t = 0; t < TB; ++t) {
            for (int v = 0; v < 4; ++v) xv[t][v] = hn::Load(df, x + t * xs + e + 16 * v);
          }
          for (int r = 0; r < 4; ++r) {
            __m512 raw[4];
            E4m3x64(tabs, data[r] + e, raw);
            for (int t = 0; t < TB; ++t) {
              VD s0 = hn::Zero(dd), s1 = hn::Zero(dd);
              for (int v = 0; v < 4; ++v) {
                const VF prod = hn::Mul(VF{raw[v]}, xv[t][v]);
                s0 = hn::Add(s0, hn::PromoteTo(dd, hn::LowerHalf(dh, prod)));
                s1 = hn::Add(s1, hn::PromoteTo(dd, hn::UpperHalf(dh, prod)));
              }
              acc[r][t] = hn::Add(acc[r][t], hn::Add(s0, s1));
            }
          }
        }
        for (int r = 0; r < 4; ++r) {
          for (int t = 0; t < TB; ++t) {
            total[r][t] = total[r][t] + hn::GetLane(hn::SumOfLanes(dd, acc[r][t])) * f[r];
            acc[r][t] = hn::Zero(dd);
          }
        }
        continue;
      }
    }
#endif
    for (int64_t e = b0; e < b1; e += NF) {
      if ((e & (kFp8 ? 63 : 127)) == 0) {  // once per cache line of the rows
        rs.prefetch(kFp8 ? e : e / 2);
      }
      VF wv[4];
      for (int r = 0; r < 4; ++r) {
        if constexpr (kFp8) {
          wv[r] = E4m3Bits(df, e < full_end ? data[r] + e : tail[r]);
        } else {
          const int64_t o = e - b0;
          const uint8_t* p = data[r] + b0 / 2 + (o & 15);
          wv[r] = hn::Mul(o < 16 ? E2m1Bits<false>(df, p) : E2m1Bits<true>(df, p), code_scale);
        }
      }
      for (int t = 0; t < TB; ++t) {
        const VF xv = hn::Load(df, x + t * xs + e);
        for (int r = 0; r < 4; ++r) {
          const VF prod = hn::Mul(wv[r], xv);
          const VD lo = hn::PromoteTo(dd, hn::LowerHalf(dh, prod)), hi = hn::PromoteTo(dd, hn::UpperHalf(dh, prod));
          if constexpr (kFp8) {
            acc[r][t] = hn::Add(acc[r][t], hn::Add(lo, hi));
          } else {
            const VD fv = hn::Set(dd, f[r]);
            acc[r][t] = hn::MulAdd(hi, fv, hn::MulAdd(lo, fv, acc[r][t]));
          }
        }
      }
    }
    if constexpr (kFp8) {
      for (int r = 0; r < 4; ++r) {
        for (int t = 0; t < TB; ++t) {
          total[r][t] = total[r][t] + hn::GetLane(hn::SumOfLanes(dd, acc[r][t])) * f[r];
          acc[r][t] = hn::Zero(dd);
        }
      }
    }
  }
  for (int r = 0; r < 4; ++r) {
    for (int t = 0; t < TB; ++t) out[r][t] = kFp8 ? total[r][t] : hn::GetLane(hn::SumOfLanes(dd, acc[r][t]));
  }
}
#endif  // HWY_TARGET == HWY_SCALAR

#ifdef DSV4_E4M3_TABLES
// Reference-mode FP8 decode on VBMI targets: the codes decoded straight to doubles (byte
// tables) and multiplied with the double inputs by double FMAs. Each block's sum of exact
// products is exact (see linear_kernels.h) and so equals the FP32-product kernel's whatever
// the order; the blocks are scaled and added in K order as there: the same bits.
template <int TB>
HWY_NOINLINE void FusedRowsFp8Tables(const WeightMatrix& w, const int64_t (&row)[4], const double* HWY_RESTRICT x,
                                     int64_t xs, double (&out)[4][TB]) {
  const hn::ScalableTag<double> dd;
  using VD = hn::Vec<decltype(dd)>;
  const int64_t cols = w.cols;
  const RowStreams<WeightFormat::kFp8Block> rs(w, row);
  const E4m3Tables& tabs = e4m3_tables();
  double total[4][TB] = {};
  for (int64_t b0 = 0; b0 < cols; b0 += 128) {
    VD acc[4][TB];
    ZeroAccumulators(dd, acc);
    for (int64_t e = b0; e < b0 + 128; e += 64) {
      rs.prefetch(e);
      for (int r = 0; r < 4; ++r) {
        __m512d wv[8];
        E4m3x64Double(tabs, rs.data[r] + e, wv);
        for (int t = 0; t < TB; ++t) {
          VD a0 = acc[r][t], a1 = hn::Zero(dd);
          for (int v = 0; v < 8; v += 2) {
            a0 = hn::MulAdd(VD{wv[v]}, hn::Load(dd, x + t * xs + e + 8 * v), a0);
            a1 = hn::MulAdd(VD{wv[v + 1]}, hn::Load(dd, x + t * xs + e + 8 * v + 8), a1);
          }
          acc[r][t] = hn::Add(a0, a1);
        }
      }
    }
    for (int r = 0; r < 4; ++r) {
      const double f = double_factor(rs.scale(r, b0), kE4m3Shift);
      for (int t = 0; t < TB; ++t) total[r][t] = total[r][t] + hn::GetLane(hn::SumOfLanes(dd, acc[r][t])) * f;
    }
  }
  for (int r = 0; r < 4; ++r) {
    for (int t = 0; t < TB; ++t) out[r][t] = total[r][t];
  }
}
#endif

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
#define DSV4_FP4_DOUBLE_TABLES 1
// Reference-mode FP4 decode of whole rows that pass the span test (their sums are exact in
// any order, see linear_kernels.h) on AVX-512 targets: per 32-column block the 16 E2M1 values
// times the block's 2^Ew as a double table in two registers, indexed by the codes (vpermt2pd
// reads the low 4 bits of each index), and double FMAs with the double inputs. The products
// are those of FusedRowsF32Products (code * x * 2^Ew, exact), so the exact sum is the same.
template <int TB>
HWY_NOINLINE void FusedRowsFp4Tables(const WeightMatrix& w, const int64_t (&row)[4], const double* HWY_RESTRICT x,
                                     int64_t xs, double (&out)[4][TB]) {
  const hn::ScalableTag<double> dd;
  using VD = hn::Vec<decltype(dd)>;
  const int64_t cols = w.cols;
  const RowStreams<WeightFormat::kFp4> rs(w, row);
  alignas(64) double values[16];
  for (int i = 0; i < 16; ++i) values[i] = kE2m1Values[i];
  const __m512d t0 = _mm512_load_pd(values), t1 = _mm512_load_pd(values + 8);
  VD acc[4][TB][2];
  for (int r = 0; r < 4; ++r) {
    for (int t = 0; t < TB; ++t) acc[r][t][0] = acc[r][t][1] = hn::Zero(dd);
  }
  for (int64_t b0 = 0; b0 < cols; b0 += 32) {
    if ((b0 & 127) == 0) {  // once per cache line of the rows
      rs.prefetch(b0 / 2);
    }
    for (int r = 0; r < 4; ++r) {
      const __m512d f = _mm512_set1_pd(double_factor(rs.scale(r, b0), 0));
      const __m512d s0 = _mm512_mul_pd(t0, f), s1 = _mm512_mul_pd(t1, f);
      const uint8_t* p = rs.data[r] + b0 / 2;
      const __m512i i0 = _mm512_cvtepu8_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
      const __m512i i1 = _mm512_cvtepu8_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 8)));
      const VD w0{_mm512_permutex2var_pd(s0, i0, s1)};
      const VD w1{_mm512_permutex2var_pd(s0, i1, s1)};
      const VD w2{_mm512_permutex2var_pd(s0, _mm512_srli_epi64(i0, 4), s1)};
      const VD w3{_mm512_permutex2var_pd(s0, _mm512_srli_epi64(i1, 4), s1)};
      for (int t = 0; t < TB; ++t) {
        const double* xt = x + t * xs + b0;
        acc[r][t][0] = hn::MulAdd(w0, hn::Load(dd, xt), acc[r][t][0]);
        acc[r][t][1] = hn::MulAdd(w1, hn::Load(dd, xt + 8), acc[r][t][1]);
        acc[r][t][0] = hn::MulAdd(w2, hn::Load(dd, xt + 16), acc[r][t][0]);
        acc[r][t][1] = hn::MulAdd(w3, hn::Load(dd, xt + 24), acc[r][t][1]);
      }
    }
  }
  for (int r = 0; r < 4; ++r) {
    for (int t = 0; t < TB; ++t) out[r][t] = hn::GetLane(hn::SumOfLanes(dd, hn::Add(acc[r][t][0], acc[r][t][1])));
  }
}
#endif

#ifdef DSV4_FP4_DOUBLE_TABLES
// Precise-mode FP4 decode on AVX-512 targets: the kFp4Table loop of FusedRows (same tables,
// same FMAs in the same order) with the block scales of 16 blocks turned into floats at once
// (E8M0 code << 23, then broadcast from memory into the table multiply) and the codes indexing
// the tables directly (vpermps reads the low 4 bits).
template <int TB>
HWY_NOINLINE void FusedRowsFp4Float(const WeightMatrix& w, const int64_t (&row)[4], const float* HWY_RESTRICT x,
                                    int64_t xs, double (&out)[4][TB]) {
  const hn::ScalableTag<float> df;
  using V = hn::Vec<decltype(df)>;
  const int64_t cols = w.cols, blocks = cols / 32;
  const RowStreams<WeightFormat::kFp4> rs(w, row);
  const uint8_t* const(&data)[4] = rs.data;
  const uint8_t* const(&scales)[4] = rs.scales;
  const __m512 values = _mm512_load_ps(kE2m1Values);
  V a[4][TB];
  ZeroAccumulators(df, a);
  for (int64_t c0 = 0; c0 < blocks; c0 += 16) {  // 16 scale blocks per chunk
    const int64_t nb = std::min<int64_t>(16, blocks - c0);
    const __mmask16 live = static_cast<__mmask16>((1u << nb) - 1);
    alignas(64) float sv[4][16];  // e8m0_value of each block's scale
    for (int r = 0; r < 4; ++r) {
      const __m512i sc = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(live, scales[r] + c0));
      const __mmask16 odd = _mm512_mask_cmpeq_epi32_mask(live, sc, _mm512_setzero_si512()) |
                            _mm512_mask_cmpeq_epi32_mask(live, sc, _mm512_set1_epi32(255));
      if (odd == 0) {
        _mm512_store_si512(sv[r], _mm512_slli_epi32(sc, 23));
      } else {
        for (int64_t b = 0; b < nb; ++b) sv[r][b] = e8m0_value(scales[r][c0 + b]);
      }
    }
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t b0 = (c0 + b) * 32;
      if ((b0 & 127) == 0) rs.prefetch(b0 / 2);
      for (int r = 0; r < 4; ++r) {
        const __m512 table = _mm512_mul_ps(values, _mm512_set1_ps(sv[r][b]));  // broadcast from memory
        const __m512i codes = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(data[r] + b0 / 2)));
        const V lo{_mm512_permutexvar_ps(codes, table)};
        const V hi{_mm512_permutexvar_ps(_mm512_srli_epi32(codes, 4), table)};
        for (int t = 0; t < TB; ++t) {
          a[r][t] = hn::MulAdd(lo, hn::Load(df, x + t * xs + b0), a[r][t]);
          a[r][t] = hn::MulAdd(hi, hn::Load(df, x + t * xs + b0 + 16), a[r][t]);
        }
      }
    }
  }
  for (int r = 0; r < 4; ++r) {
    for (int t = 0; t < TB; ++t) out[r][t] = static_cast<double>(hn::GetLane(hn::SumOfLanes(df, a[r][t])));
  }
}
#endif

#ifdef DSV4_FP4_DOUBLE_TABLES
// kDouble BF16 decode (the LM head in both modes) on AVX-512 targets without conversions:
// a BF16 pattern sign-extended to 64 bits and shifted left by 45 has its sign in bit 63 (and
// copies in 62..60, cleared), exponent in 59..52 and mantissa in 51..45: the double w * 2^-896,
// exact for every finite BF16 (zeros stay zeros, subnormals become double subnormals of the
// same scaled value). Multiplied by the inputs times 2^896 (exact: |x| < 2^128) the products
// are exactly w * x, fed to the same double FMAs in the same lane order as FusedRows: the same
// bits. Returns false, computing nothing usable, if a row holds an Inf / NaN weight (the
// caller then takes FusedRows).
template <int TB>
HWY_NOINLINE bool FusedRowsBf16Double(const WeightMatrix& w, const int64_t (&row)[4], const double* HWY_RESTRICT x,
                                      int64_t xs, double (&out)[4][TB]) {
  const hn::ScalableTag<double> dd;
  using VD = hn::Vec<decltype(dd)>;
  const int64_t cols = w.cols;
  const RowStreams<WeightFormat::kBf16> rs(w, row);
  const __m512i keep = _mm512_set1_epi64(static_cast<int64_t>(0x8FFFFFFFFFFFFFFFull));
  const __m512i magnitude = _mm512_set1_epi16(0x7FFF);
  __m512i largest = _mm512_setzero_si512();  // of the magnitude bits, for the Inf / NaN check
  VD a[4][TB];
  ZeroAccumulators(dd, a);
  for (int64_t e = 0; e < cols; e += 32) {
    rs.prefetch(e * 2);
    for (int r = 0; r < 4; ++r) {
      const uint8_t* p = rs.data[r] + e * 2;
      largest = _mm512_max_epu16(largest, _mm512_and_si512(_mm512_loadu_si512(p), magnitude));
      for (int v = 0; v < 4; ++v) {
        const __m512i q = _mm512_cvtepi16_epi64(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * v)));
        const VD wv{_mm512_castsi512_pd(_mm512_and_si512(_mm512_slli_epi64(q, 45), keep))};
        for (int t = 0; t < TB; ++t) a[r][t] = hn::MulAdd(wv, hn::Load(dd, x + t * xs + e + 8 * v), a[r][t]);
      }
    }
  }
  if (_mm512_cmpge_epu16_mask(largest, _mm512_set1_epi16(0x7F80)) != 0) return false;
  for (int r = 0; r < 4; ++r) {
    for (int t = 0; t < TB; ++t) out[r][t] = hn::GetLane(hn::SumOfLanes(dd, a[r][t]));
  }
  return true;
}

// The inputs times 2^896 for FusedRowsBf16Double, in per-thread scratch.
inline const double* ScaledInputs(const double* HWY_RESTRICT x, int64_t stride, int64_t n) {
  thread_local AlignedBuffer buffer;
  double* out = buffer.get<double>(stride * n);
  const hn::ScalableTag<double> dd;
  const auto f = hn::Set(dd, 0x1p896);
  for (int64_t i = 0; i < stride * n; i += static_cast<int64_t>(hn::Lanes(dd))) {
    hn::Store(hn::Mul(hn::Load(dd, x + i), f), dd, out + i);
  }
  return out;
}
#endif

// Widens [mn, mx] to hold the n bytes from p.
inline void ByteRange(const uint8_t* HWY_RESTRICT p, int64_t n, int& mn, int& mx) {
  const hn::ScalableTag<uint8_t> d8;
  const int64_t N8 = static_cast<int64_t>(hn::Lanes(d8));
  auto lo = hn::Set(d8, uint8_t{255}), hi = hn::Zero(d8);
  int64_t i = 0;
  for (; i + N8 <= n; i += N8) {
    const auto v = hn::LoadU(d8, p + i);
    lo = hn::Min(lo, v);
    hi = hn::Max(hi, v);
  }
  alignas(64) uint8_t l[64], h[64];
  hn::Store(lo, d8, l);
  hn::Store(hi, d8, h);
  for (int64_t j = 0; j < N8; ++j) {
    mn = std::min<int>(mn, l[j]);
    mx = std::max<int>(mx, h[j]);
  }
  for (; i < n; ++i) {
    mn = std::min<int>(mn, p[i]);
    mx = std::max<int>(mx, p[i]);
  }
}

// max - min of n bytes.
inline int ByteSpan(const uint8_t* HWY_RESTRICT p, int64_t n) {
  int mn = 255, mx = 0;
  ByteRange(p, n, mn, mx);
  return mx - mn;
}

// Widens [mn, mx] to hold the E8M0 scale bytes of GGUF MXFP4 row `row` (stored rows).
inline void Mxfp4ScaleRange(const WeightMatrix& w, int64_t row, int& mn, int& mx) {
  const int64_t blocks = w.cols / 32;
  const uint8_t* p = w.data + row * blocks * 17;
  for (int64_t b = 0; b < blocks; ++b) {
    mn = std::min<int>(mn, p[17 * b]);
    mx = std::max<int>(mx, p[17 * b]);
  }
}

// max - min of the E8M0 scale bytes of `count` GGUF MXFP4 rows from `first` (stored rows).
inline int Mxfp4ScaleSpan(const WeightMatrix& w, int64_t first, int64_t count) {
  int mn = 255, mx = 0;
  for (int64_t r = first; r < first + count; ++r) Mxfp4ScaleRange(w, r, mn, mx);
  return mx - mn;
}

// The same spans over the first `count` rows of a pass (stored rows, not necessarily adjacent:
// RowPasses): FP4's scale array, GGUF MXFP4's first byte of each 17-byte block.
inline int Fp4ScaleSpan(const WeightMatrix& w, const int64_t (&row)[4], int64_t count) {
  const int64_t blocks = w.cols / 32;
  int mn = 255, mx = 0;
  for (int64_t r = 0; r < count; ++r) ByteRange(w.scale + row[r] * blocks, blocks, mn, mx);
  return mx - mn;
}
inline int Mxfp4ScaleSpan(const WeightMatrix& w, const int64_t (&row)[4], int64_t count) {
  int mn = 255, mx = 0;
  for (int64_t r = 0; r < count; ++r) Mxfp4ScaleRange(w, row[r], mn, mx);
  return mx - mn;
}

inline int ceil_log2(int64_t n) {
  int b = 0;
  while ((int64_t{1} << b) < n) ++b;
  return b;
}

// ---------------------------------------------------------------------------------------
// GGUF Q8_0 / MXFP4 rows for one or two tokens (decode): 4 rows decoded block by block in
// registers and multiplied at once, with no buffer and no call per block. Each value is the
// SIMD decoder's (Q8_0: float(q) * d with the same F16 conversion; MXFP4: the value table
// times e8m0_half(e), a product exact like ggml's float(v) * d) and is fed in K order to lane
// (k mod N) of the row's accumulator, as MicroPlain / MicroBlocks do on the decoded buffer:
// kFloat in FP32 lanes, kDouble in double lanes over the whole row, kDoubleBlocks in double
// lanes per K block (KBlock) whose lane sum is added to the row's total in K order (factor 1;
// MXFP4 rows in the FP4 role whose scales allow it sum the whole row, as the buffered path
// decides by the same test). So the bits are the buffered path's. MXFP4 needs its 16 values
// in one FP32 register (16-lane targets); GgmlFused says which weights come here.

HWY_INLINE bool GgmlFused(const Problem& pb) {
  const WeightMatrix& w = *pb.w;
  if (w.format != WeightFormat::kGgml || pb.bf16_weights || pb.n_tokens > 2) return false;
  if (w.ggml_type == GgmlType::Q8_0) return true;
  return w.ggml_type == GgmlType::MXFP4 && hn::MaxLanes(hn::ScalableTag<float>()) == 16;
}

// The block's F16 scale converted as ggml_kernels.cc's HalfAt does (F16C where it is there).
HWY_INLINE float GgmlHalf(const uint8_t* p) {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
  return _cvtsh_ss(ggml_bytes::u16_at(p));
#else
  return ggml_bytes::half_at(p);
#endif
}

// Feeds one ggml block (32 values; FP32 vector v[r][j] holds values j * NF .. of row r) of the
// 4 rows to their accumulators, each input vector loaded once: FP32 lanes as they are, double
// lanes after widening (exact).
template <class DA, class VF, int kVecs, int TB>
HWY_INLINE void GgmlBlockMulAdd(DA da, const VF (&v)[4][kVecs], const hn::TFromD<DA>* HWY_RESTRICT x, int64_t xs,
                                hn::Vec<DA> (&a)[4][TB]) {
  constexpr int64_t N = static_cast<int64_t>(hn::MaxLanes(da));
  if constexpr (sizeof(hn::TFromD<DA>) == 4) {
    for (int j = 0; j < kVecs; ++j) {
      for (int t = 0; t < TB; ++t) {
        const auto xv = hn::Load(da, x + t * xs + j * N);
        for (int r = 0; r < 4; ++r) a[r][t] = hn::MulAdd(v[r][j], xv, a[r][t]);
      }
    }
  } else if constexpr (hn::MaxLanes(hn::Rebind<float, DA>()) == hn::MaxLanes(hn::ScalableTag<float>())) {
    for (int j = 0; j < kVecs; ++j) {  // one lane (the emulated scalar target): widen as a whole
      for (int t = 0; t < TB; ++t) {
        const auto xv = hn::Load(da, x + t * xs + j * N);
        for (int r = 0; r < 4; ++r) a[r][t] = hn::MulAdd(hn::PromoteTo(da, v[r][j]), xv, a[r][t]);
      }
    }
  } else {
#if HWY_TARGET != HWY_SCALAR
    const hn::Rebind<float, DA> dfh;  // N floats: the lower or upper half of an FP32 vector
    for (int j = 0; j < kVecs; ++j) {
      hn::Vec<DA> lo[4], hi[4];
      for (int r = 0; r < 4; ++r) {
        lo[r] = hn::PromoteTo(da, hn::LowerHalf(dfh, v[r][j]));
        hi[r] = hn::PromoteTo(da, hn::UpperHalf(dfh, v[r][j]));
      }
      for (int t = 0; t < TB; ++t) {
        const auto x0 = hn::Load(da, x + t * xs + (2 * j) * N), x1 = hn::Load(da, x + t * xs + (2 * j + 1) * N);
        for (int r = 0; r < 4; ++r) a[r][t] = hn::MulAdd(lo[r], x0, a[r][t]);
        for (int r = 0; r < 4; ++r) a[r][t] = hn::MulAdd(hi[r], x1, a[r][t]);
      }
    }
#endif
  }
}

template <Accumulation kAcc, int TB, bool kQ8, class DA>
HWY_NOINLINE void FusedRowsGgml(DA da, const WeightMatrix& w, const int64_t (&row)[4], int64_t row_bytes,
                                const float* HWY_RESTRICT mx_values, const hn::TFromD<DA>* HWY_RESTRICT x, int64_t xs,
                                bool whole_row, double (&out)[4][TB]) {
  using V = hn::Vec<DA>;
  const hn::ScalableTag<float> df;
  using VF = hn::Vec<decltype(df)>;
  constexpr int64_t NF = static_cast<int64_t>(hn::MaxLanes(df));
  constexpr int kVecs = static_cast<int>(32 / NF);  // FP32 vectors per ggml block
  const int64_t cols = w.cols, blocks = cols / 32;
  // ggml blocks per accumulation block: the whole row, or the K block of kDoubleBlocks.
  const int64_t per_sum = kAcc == Accumulation::kDoubleBlocks && !whole_row ? KBlock(w) / 32 : blocks;
  constexpr int64_t block_bytes = kQ8 ? 34 : 17;  // Q8_0: F16 d, 32 x int8; MXFP4: E8M0 e, 16 bytes
  const uint8_t* data[4];
  for (int r = 0; r < 4; ++r) data[r] = w.data + row[r] * row_bytes;
  double total[4][TB] = {};
  V a[4][TB];
  for (int64_t s0 = 0; s0 < blocks; s0 += per_sum) {
    const int64_t s1 = std::min(blocks, s0 + per_sum);
    ZeroAccumulators(da, a);
    for (int64_t b = s0; b < s1; ++b) {
      const int64_t off = b * block_bytes;
      if ((off & 63) < block_bytes) PrefetchRows(data, off, row_bytes);  // about once per cache line
      VF v[4][kVecs];
      for (int r = 0; r < 4; ++r) {
        if constexpr (kQ8) {
          const hn::Rebind<int32_t, decltype(df)> di;
          const hn::Rebind<int8_t, decltype(df)> d8;
          const VF d = hn::Set(df, GgmlHalf(data[r] + off));
          const int8_t* q = reinterpret_cast<const int8_t*>(data[r] + off + 2);
          for (int j = 0; j < kVecs; ++j) v[r][j] = hn::Mul(hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, q + j * NF))), d);
        } else if constexpr (NF == 16) {  // MXFP4: element j in the low nibble of byte j, j + 16 in the high
          const hn::Rebind<uint32_t, decltype(df)> du;
          const hn::Rebind<int32_t, decltype(df)> di;
          const hn::Rebind<uint8_t, decltype(df)> d8;
          const VF table = hn::Mul(hn::Load(df, mx_values), hn::Set(df, ggml_bytes::e8m0_half(data[r][off])));
          const auto codes = hn::PromoteTo(du, hn::LoadU(d8, data[r] + off + 1));
          v[r][0] = hn::TableLookupLanes(table, hn::IndicesFromVec(df, hn::BitCast(di, hn::And(codes, hn::Set(du, 15u)))));
          v[r][1] = hn::TableLookupLanes(table, hn::IndicesFromVec(df, hn::BitCast(di, hn::ShiftRight<4>(codes))));
        }
      }
      GgmlBlockMulAdd<DA, VF, kVecs, TB>(da, v, x + b * 32, xs, a);
    }
    if constexpr (kAcc == Accumulation::kDoubleBlocks) {
      if (!whole_row) {
        for (int r = 0; r < 4; ++r) {
          for (int t = 0; t < TB; ++t) total[r][t] = total[r][t] + hn::GetLane(hn::SumOfLanes(da, a[r][t]));
        }
      }
    }
  }
  for (int r = 0; r < 4; ++r) {
    for (int t = 0; t < TB; ++t) {
      out[r][t] = kAcc == Accumulation::kDoubleBlocks && !whole_row
                      ? total[r][t]
                      : static_cast<double>(hn::GetLane(hn::SumOfLanes(da, a[r][t])));
    }
  }
}

template <Accumulation kAcc, int TB, class DA>
void FusedTilesGgml(DA da, const Problem& pb, int64_t tile_begin, int64_t tile_end) {
  using T = hn::TFromD<DA>;
  const WeightMatrix& w = *pb.w;
  const T* x = static_cast<const T*>(pb.x);
  // MXFP4 standing for FP4 in reference mode: the buffered path's whole-row exactness test.
  const bool mxfp4_rows = kAcc == Accumulation::kDoubleBlocks && w.ggml_type == GgmlType::MXFP4 &&
                          w.ggml_role == WeightFormat::kFp4;
  const int fp4_budget = 26 - ceil_log2(std::max<int64_t>(1, w.cols / 32)) - pb.act_exponent_span;
  // Once per call, not per 4 rows: the row stride and MXFP4's value table.
  const int64_t row_bytes = ggml_row_bytes(w.ggml_type, w.cols);
  alignas(64) float mx_values[16];
  for (int i = 0; i < 16; ++i) mx_values[i] = static_cast<float>(ggml_grids::mxfp4_values()[i]);
  const RowPasses passes(tile_begin * kRowTile, std::min(w.rows, tile_end * kRowTile), true);
  for (int64_t i = 0; i < passes.count(); ++i) {
    int64_t local[4], row[4];
    const int64_t rows_here = passes.rows(i, local);
    for (int r = 0; r < 4; ++r) row[r] = w.row_begin + local[r];
    const bool whole_row = mxfp4_rows && Mxfp4ScaleSpan(w, row, rows_here) <= fp4_budget;
    double out[4][TB];
    if (w.ggml_type == GgmlType::Q8_0) {
      FusedRowsGgml<kAcc, TB, true>(da, w, row, row_bytes, mx_values, x, pb.x_stride, whole_row, out);
    } else {
      FusedRowsGgml<kAcc, TB, false>(da, w, row, row_bytes, mx_values, x, pb.x_stride, whole_row, out);
    }
    for (int64_t r = 0; r < rows_here; ++r) {
      for (int t = 0; t < TB; ++t) {
        const float v = static_cast<float>(out[r][t]);
        pb.y[t * pb.ldy + local[r]] = pb.bf16_output ? round_bf16(v) : v;
      }
    }
  }
}

template <Accumulation kAcc, int TB, class DA>
void FusedTiles(DA da, const Problem& pb, int64_t tile_begin, int64_t tile_end) {
  using T = hn::TFromD<DA>;
  const WeightMatrix& w = *pb.w;
  const T* x = static_cast<const T*>(pb.x);
  const int64_t fp4_blocks = w.cols / 32;
  const int fp4_budget = 26 - ceil_log2(fp4_blocks) - pb.act_exponent_span;  // see linear_kernels.h
  // FP32 products need two float lanes per double lane (not on the one-lane scalar target).
  constexpr bool kF32Products = HWY_TARGET != HWY_SCALAR;
  const double* bf16_x = nullptr;  // kDouble BF16: the inputs scaled for FusedRowsBf16Double
  (void)bf16_x;
  const RowPasses passes(tile_begin * kRowTile, std::min(w.rows, tile_end * kRowTile), true);
  for (int64_t i = 0; i < passes.count(); ++i) {
    int64_t local[4], row[4];
    const int64_t rows_here = passes.rows(i, local);
    for (int r = 0; r < 4; ++r) row[r] = w.row_begin + local[r];
    double out[4][TB];
    switch (w.format) {
      case WeightFormat::kFp8Block:
#ifdef DSV4_E4M3_TABLES
        if (kAcc == Accumulation::kDoubleBlocks && w.cols % 128 == 0) {
          FusedRowsFp8Tables<TB>(w, row, reinterpret_cast<const double*>(pb.x), pb.x_stride, out);
          break;
        }
#endif
        if (kF32Products && kAcc == Accumulation::kDoubleBlocks) {
          FusedRowsF32Products<WeightFormat::kFp8Block, TB>(w, row, pb.x_f32, pb.x_stride, out);
        } else {
          FusedRows<kAcc, WeightFormat::kFp8Block, TB>(da, w, row, x, pb.x_stride, out);
        }
        break;
      case WeightFormat::kFp4:
        if (kAcc == Accumulation::kDoubleBlocks && Fp4ScaleSpan(w, row, rows_here) <= fp4_budget) {
          if (kF32Products) {  // exact, see linear_kernels.h
#ifdef DSV4_FP4_DOUBLE_TABLES
            FusedRowsFp4Tables<TB>(w, row, reinterpret_cast<const double*>(pb.x), pb.x_stride, out);
            break;
#endif
            FusedRowsF32Products<WeightFormat::kFp4, TB>(w, row, pb.x_f32, pb.x_stride, out);
          } else {
            FusedRows<Accumulation::kDouble, WeightFormat::kFp4, TB>(da, w, row, x, pb.x_stride, out);
          }
        } else {
#ifdef DSV4_FP4_DOUBLE_TABLES
          if (kAcc == Accumulation::kFloat) {
            FusedRowsFp4Float<TB>(w, row, reinterpret_cast<const float*>(pb.x), pb.x_stride, out);
            break;
          }
#endif
          FusedRows<kAcc, WeightFormat::kFp4, TB>(da, w, row, x, pb.x_stride, out);
        }
        break;
      case WeightFormat::kBf16:
#ifdef DSV4_FP4_DOUBLE_TABLES
        if (kAcc == Accumulation::kDouble && w.cols % 32 == 0) {
          if (bf16_x == nullptr) bf16_x = ScaledInputs(reinterpret_cast<const double*>(pb.x), pb.x_stride, TB);
          if (FusedRowsBf16Double<TB>(w, row, bf16_x, pb.x_stride, out)) break;
        }
#endif
        FusedRows<kAcc, WeightFormat::kBf16, TB>(da, w, row, x, pb.x_stride, out);
        break;
      case WeightFormat::kF32: FusedRows<kAcc, WeightFormat::kF32, TB>(da, w, row, x, pb.x_stride, out); break;
      case WeightFormat::kGgml: break;  // not supported by the kernels (supports() is false)
    }
    for (int64_t r = 0; r < rows_here; ++r) {
      for (int t = 0; t < TB; ++t) {
        // One rounding to FP32 (the FP32 sums convert exactly), and to BF16 where required.
        const float v = static_cast<float>(out[r][t]);
        pb.y[t * pb.ldy + local[r]] = pb.bf16_output ? round_bf16(v) : v;
      }
    }
  }
}

// Tokens per micro-kernel call: 4 x 4 accumulators + 4 weight vectors need 21 of the 32
// AVX-512 registers; targets with 16 registers take 2 tokens.
constexpr int kTokenBlock = HWY_LANES(float) >= 16 ? 4 : 2;

// Up to this many tokens a call decodes whole weight rows (see ComputeTilesT).
constexpr int64_t kWholeRowTokens = 8;

struct TileScratch {
  AlignedBuffer weights, factors, acc, vacc;
};
TileScratch& tile_scratch() {
  thread_local TileScratch s;
  return s;
}

template <Accumulation kAcc, typename T>
void ComputeTilesT(const Problem& pb, int64_t tile_begin, int64_t tile_end) {
  const hn::ScalableTag<T> da;
  const int64_t N = static_cast<int64_t>(hn::Lanes(da));
  const WeightMatrix& w = *pb.w;
  const int64_t cols = w.cols, n = pb.n_tokens;
  if (GgmlFused(pb)) {
    return n == 1 ? FusedTilesGgml<kAcc, 1>(da, pb, tile_begin, tile_end) : FusedTilesGgml<kAcc, 2>(da, pb, tile_begin, tile_end);
  }
  // Other GGUF weights take the buffered path for every token count (decoded whole rows for few).
  if (n == 1 && w.format != WeightFormat::kGgml) return FusedTiles<kAcc, 1>(da, pb, tile_begin, tile_end);
  if (n == 2 && w.format != WeightFormat::kGgml) return FusedTiles<kAcc, 2>(da, pb, tile_begin, tile_end);
  const int64_t block = KBlock(w);  // scale block along K
  constexpr bool kBlocks = kAcc == Accumulation::kDoubleBlocks;
  // Few tokens: 4 whole rows per pass, so that each weight row is read as one sequential
  // stream (short bursts from many rows defeat the hardware prefetchers). Many tokens: the 16
  // rows of the tile, decoded per K chunk into 32 KiB (L1) and reused by every token there;
  // a token block's chunk of inputs stays in L1 across the tile's four 4-row micro-kernels.
  const bool few = n <= kWholeRowTokens;
  const int64_t group = few ? 4 : kRowTile;
  const int64_t whole = (cols + 127) / 128 * 128;
  // GGUF rows are decoded by the ggml decoders, not streamed: few tokens take their 4 rows in
  // chunks of 8 KiB of decoded values each (32 KiB, L1), a multiple of every ggml block
  // (faster here than whole rows, which spill to L2 between the decode and the products).
  const int64_t few_chunk = w.format == WeightFormat::kGgml ? std::min<int64_t>(whole, 8192 / static_cast<int64_t>(sizeof(T))) : whole;
  const int64_t chunk = few ? few_chunk : std::min<int64_t>(whole, 32768 / kRowTile / static_cast<int64_t>(sizeof(T)));
  const int64_t blocks_per_chunk = chunk / block;
  const int64_t acc_row = kBlocks ? n : n * N;  // accumulator elements per tile row
  const int64_t vec_row = n * N;                // vector accumulators per row (exact FP4 rows)

  TileScratch& s = tile_scratch();
  T* wbuf = s.weights.get<T>(group * chunk);
  double* fbuf = s.factors.get<double>(group * blocks_per_chunk);
  T* acc = s.acc.get<T>(kRowTile * acc_row);
  T* vacc = kBlocks ? s.vacc.get<T>(kRowTile * vec_row) : nullptr;
  const T* x = static_cast<const T*>(pb.x);
  // Reference FP4: 4-row groups whose rows provably sum exactly in double lanes take the
  // kDouble decoding and micro-kernel (see linear_kernels.h), the others the per-block one.
  const int64_t fp4_blocks = w.cols / 32;
  const int fp4_budget = 26 - ceil_log2(std::max<int64_t>(1, fp4_blocks)) - pb.act_exponent_span;
  bool exact_rows[kRowTile / 4] = {};
  // GGUF MXFP4 standing for FP4: the same values and scales as the official FP4, so the same
  // whole-row exactness test (its E8M0 scales are the first byte of each 17-byte block).
  const bool mxfp4_rows = w.format == WeightFormat::kGgml && w.ggml_type == GgmlType::MXFP4 &&
                          w.ggml_role == WeightFormat::kFp4;

  for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
    const int64_t r0 = tile * kRowTile;
    const int64_t rows_here = std::min(kRowTile, w.rows - r0);
    std::fill(acc, acc + kRowTile * acc_row, T(0));
    if constexpr (kBlocks) {
      std::fill(vacc, vacc + kRowTile * vec_row, T(0));
      for (int64_t sub = 0; sub < rows_here; sub += 4) {
        const int64_t first = w.row_begin + r0 + sub, count = std::min<int64_t>(4, rows_here - sub);
        exact_rows[sub / 4] = (w.format == WeightFormat::kFp4 &&
                               ByteSpan(w.scale + first * fp4_blocks, count * fp4_blocks) <= fp4_budget) ||
                              (mxfp4_rows && Mxfp4ScaleSpan(w, first, count) <= fp4_budget);
      }
    }
    for (int64_t e0 = 0; e0 < cols; e0 += chunk) {
      const int64_t e1 = std::min(cols, e0 + chunk);
      const int64_t nvec = (e1 - e0 + N - 1) / N;
      for (int64_t g0 = 0; g0 < rows_here; g0 += group) {
        const int64_t g_rows = std::min(group, rows_here - g0);
        for (int64_t r = 0; r < (g_rows + 3) / 4 * 4; ++r) {
          T* dst = wbuf + r * chunk;
          double* f = fbuf + r * blocks_per_chunk;
          const int64_t row = w.row_begin + r0 + g0 + r;
          if (r >= g_rows) {  // rows past the matrix: zero weights, outputs discarded
            std::fill(dst, dst + nvec * N, T(0));
            std::fill(f, f + blocks_per_chunk, 0.0);
            continue;
          }
          if constexpr (kBlocks) {
            if (exact_rows[(g0 + r) / 4]) {
              DecodeRowChunk<Accumulation::kDouble>(da, w, row, e0, e1, dst, f);
              continue;
            }
          }
          DecodeRowChunk<kAcc>(da, w, row, e0, e1, dst, f, pb.bf16_weights);
        }
        for (int64_t t0 = 0; t0 < n; t0 += kTokenBlock) {
          const int64_t tb = std::min<int64_t>(kTokenBlock, n - t0);
          const T* xt = x + t0 * pb.x_stride + e0;
          for (int64_t sub = 0; sub < g_rows; sub += 4) {
            const T* wr = wbuf + sub * chunk;
            const int64_t tile_row = g0 + sub;
            if (!kBlocks || exact_rows[tile_row / 4]) {
              T* a = (kBlocks ? vacc : acc) + tile_row * vec_row + t0 * N;
              switch (tb) {
                case 1: MicroPlain<1>(da, wr, chunk, xt, pb.x_stride, nvec, a, vec_row); break;
                case 2: MicroPlain<2>(da, wr, chunk, xt, pb.x_stride, nvec, a, vec_row); break;
                case 3: MicroPlain<3>(da, wr, chunk, xt, pb.x_stride, nvec, a, vec_row); break;
                default: MicroPlain<kTokenBlock>(da, wr, chunk, xt, pb.x_stride, nvec, a, vec_row); break;
              }
            } else if constexpr (kBlocks) {
              const int64_t vpb = block / N;
              const double* f = fbuf + sub * blocks_per_chunk;
              double* tot = acc + tile_row * acc_row + t0;
              const int64_t bpc = blocks_per_chunk;
              switch (tb) {
                case 1: MicroBlocks<1>(da, wr, chunk, xt, pb.x_stride, nvec, vpb, f, bpc, tot, acc_row); break;
                case 2: MicroBlocks<2>(da, wr, chunk, xt, pb.x_stride, nvec, vpb, f, bpc, tot, acc_row); break;
                case 3: MicroBlocks<3>(da, wr, chunk, xt, pb.x_stride, nvec, vpb, f, bpc, tot, acc_row); break;
                default: MicroBlocks<kTokenBlock>(da, wr, chunk, xt, pb.x_stride, nvec, vpb, f, bpc, tot, acc_row); break;
              }
            }
          }
        }
      }
    }
    // One rounding to FP32 (and BF16 where the reference outputs BF16).
    for (int64_t r = 0; r < rows_here; ++r) {
      const bool lanes = !kBlocks || exact_rows[r / 4];
      const T* va = (kBlocks ? vacc : acc) + r * vec_row;
      for (int64_t t = 0; t < n; ++t) {
        const T total = lanes ? hn::GetLane(hn::SumOfLanes(da, hn::Load(da, va + t * N))) : acc[r * acc_row + t];
        const float out = static_cast<float>(total);
        pb.y[t * pb.ldy + r0 + r] = pb.bf16_output ? round_bf16(out) : out;
      }
    }
  }
}

void ComputeTiles(const Problem& pb, int64_t tile_begin, int64_t tile_end) {
  switch (pb.accumulation) {
    case Accumulation::kFloat:
      return ComputeTilesT<Accumulation::kFloat, float>(pb, tile_begin, tile_end);
    case Accumulation::kDouble:
      return ComputeTilesT<Accumulation::kDouble, double>(pb, tile_begin, tile_end);
    case Accumulation::kDoubleBlocks:
      return ComputeTilesT<Accumulation::kDoubleBlocks, double>(pb, tile_begin, tile_end);
    case Accumulation::kInt8:
      break;  // int8_dot::compute_tiles
  }
}

int64_t CurrentTarget() { return HWY_TARGET; }

}  // namespace HWY_NAMESPACE
}  // namespace dsv4::linear_kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace dsv4::linear_kernels {

HWY_EXPORT(ComputeTiles);
HWY_EXPORT(CurrentTarget);

bool supports(const WeightMatrix& w) {
  switch (w.format) {
    case WeightFormat::kFp8Block:
      return w.block == 128 && w.scale != nullptr;
    case WeightFormat::kFp4:
      return w.cols % 32 == 0 && w.scale != nullptr;
    case WeightFormat::kBf16:
    case WeightFormat::kF32:
      return true;
    case WeightFormat::kGgml: {
      const auto info = ggml_type_info(static_cast<uint32_t>(w.ggml_type));
      return info && info->dequantizable && w.ggml_type != GgmlType::I32 && info->block > 0 && w.cols % info->block == 0;
    }
  }
  return false;
}

void compute_tiles(const Problem& problem, int64_t tile_begin, int64_t tile_end) {
  HWY_DYNAMIC_DISPATCH(ComputeTiles)(problem, tile_begin, tile_end);
}

std::vector<int64_t> available_targets() { return hwy::SupportedAndGeneratedTargets(); }

void force_target(int64_t target) { hwy::SetSupportedTargetsForTest(target); }

std::string target_name(int64_t target) { return hwy::TargetName(target); }

std::string current_target_name() { return hwy::TargetName(HWY_DYNAMIC_DISPATCH(CurrentTarget)()); }

}  // namespace dsv4::linear_kernels
#endif  // HWY_ONCE
