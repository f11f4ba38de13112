// Highway decoders of the ggml types; see ggml_kernels.h. Compiled once per target by
// foreach_target.h, with -ffp-contract=off (every value is rounded where ggml rounds it).
//
// Each decoder follows its scalar twin in ggml_types.cc operation for operation: the block
// scales are formed in scalar FP32 exactly as there (d * sc, d * (0.5 + s) * 0.25, ...), the
// quantised integers are unpacked in vector lanes (or, for the codebook types, by small tables
// into signed bytes), converted to FP32 (exact) and multiplied (and offset) by the scales in
// vector lanes: the same IEEE operations on the same operands. The codebook types multiply
// the scale by the signed grid value where ggml multiplies by the grid value and then by +-1:
// rounding is symmetric, so db * (-g) == (db * g) * -1 bit for bit.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/ggml_kernels.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include <bit>
#include <cstring>

#include "ops/formats.h"
#include "ops/ggml_grids.h"
#include "ops/ggml_kernels.h"
#include "ops/ggml_tables.h"

#ifndef DSV4_OPS_GGML_KERNELS_TABLES_
#define DSV4_OPS_GGML_KERNELS_TABLES_
namespace dsv4::ggml_kernels::detail {

using ggml_bytes::half_at;
using ggml_bytes::u16_at;
using ggml_bytes::u32_at;
using ggml_bytes::e8m0_half;
// Scale / min pair j of the 12 packed 6-bit values of Q4_K / Q5_K.
inline void scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

}  // namespace dsv4::ggml_kernels::detail
#endif  // DSV4_OPS_GGML_KERNELS_TABLES_

HWY_BEFORE_NAMESPACE();
namespace dsv4::ggml_kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using namespace detail;
using ggml_tables::negate_bytes;
using ggml_tables::tables;
using ggml_tables::Tables;

// The F16 scale of a block: F16C where the target has it (one instruction instead of a call;
// a signalling NaN comes back quieted, as in ggml's own x86 conversion), else the scalar one.
HWY_INLINE float HalfAt(const uint8_t* p) {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
  return _cvtsh_ss(u16_at(p));
#else
  return half_at(p);
#endif
}

using DF = hn::ScalableTag<float>;
using DI = hn::Rebind<int32_t, DF>;
using DU = hn::Rebind<uint32_t, DF>;
using DU8 = hn::Rebind<uint8_t, DF>;
using DI8 = hn::Rebind<int8_t, DF>;
using VF = hn::Vec<DF>;
using VU = hn::Vec<DU>;

// N unsigned bytes -> N uint32 lanes.
HWY_INLINE VU Bytes(const uint8_t* p) { return hn::PromoteTo(DU(), hn::LoadU(DU8(), p)); }
// uint32 lanes (small values) -> exact floats.
HWY_INLINE VF ToFloat(VU v) { return hn::ConvertTo(DF(), hn::BitCast(DI(), v)); }
HWY_INLINE VF ToFloat(hn::Vec<DI> v) { return hn::ConvertTo(DF(), v); }

// y[i] = float(q[i]) * d for n (a multiple of the lanes) signed bytes.
HWY_INLINE void ScaledBytes(const int8_t* q, int n, float d, float* y) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  const VF vd = hn::Set(df, d);
  for (int i = 0; i < n; i += N) {
    hn::StoreU(hn::Mul(ToFloat(hn::PromoteTo(DI(), hn::LoadU(DI8(), q + i))), vd), df, y + i);
  }
}

HWY_INLINE int Lanes() { return static_cast<int>(hn::Lanes(DF())); }

void BlockQ8_0(const uint8_t* b, float* y) {
  ScaledBytes(reinterpret_cast<const int8_t*>(b + 2), 32, HalfAt(b), y);
}

template <bool kMin>  // Q4_1: d, m; Q4_0: d
void BlockQ4(const uint8_t* b, float* y) {
  const DF df;
  const VF vd = hn::Set(df, HalfAt(b));
  const VF vm = hn::Set(df, kMin ? HalfAt(b + 2) : 0.0f);
  const uint8_t* qs = b + (kMin ? 4 : 2);
  const auto low = hn::Set(DU(), 15u);
  const auto eight = hn::Set(DI(), 8);
  for (int j = 0; j < 16; j += Lanes()) {
    const VU u = Bytes(qs + j);
    if constexpr (kMin) {
      hn::StoreU(hn::Add(hn::Mul(ToFloat(hn::And(u, low)), vd), vm), df, y + j);
      hn::StoreU(hn::Add(hn::Mul(ToFloat(hn::ShiftRight<4>(u)), vd), vm), df, y + j + 16);
    } else {
      hn::StoreU(hn::Mul(ToFloat(hn::Sub(hn::BitCast(DI(), hn::And(u, low)), eight)), vd), df, y + j);
      hn::StoreU(hn::Mul(ToFloat(hn::Sub(hn::BitCast(DI(), hn::ShiftRight<4>(u)), eight)), vd), df, y + j + 16);
    }
  }
}

template <bool kMin>  // Q5_1: d, m, qh, qs; Q5_0: d, qh, qs
void BlockQ5(const uint8_t* b, float* y) {
  const DF df;
  const VF vd = hn::Set(df, HalfAt(b));
  const VF vm = hn::Set(df, kMin ? HalfAt(b + 2) : 0.0f);
  const VU qh = hn::Set(DU(), u32_at(b + (kMin ? 4 : 2)));
  const uint8_t* qs = b + (kMin ? 8 : 6);
  const auto low = hn::Set(DU(), 15u), one = hn::Set(DU(), 1u);
  const auto sixteen = hn::Set(DI(), 16);
  for (int j = 0; j < 16; j += Lanes()) {
    const VU u = Bytes(qs + j);
    const VU idx = hn::Iota(DU(), static_cast<uint32_t>(j));
    const VU h0 = hn::ShiftLeft<4>(hn::And(hn::Shr(qh, idx), one));
    const VU h1 = hn::ShiftLeft<4>(hn::And(hn::Shr(qh, hn::Add(idx, hn::Set(DU(), 16u))), one));
    const VU lo = hn::Or(hn::And(u, low), h0), hi = hn::Or(hn::ShiftRight<4>(u), h1);
    if constexpr (kMin) {
      hn::StoreU(hn::Add(hn::Mul(ToFloat(lo), vd), vm), df, y + j);
      hn::StoreU(hn::Add(hn::Mul(ToFloat(hi), vd), vm), df, y + j + 16);
    } else {
      hn::StoreU(hn::Mul(ToFloat(hn::Sub(hn::BitCast(DI(), lo), sixteen)), vd), df, y + j);
      hn::StoreU(hn::Mul(ToFloat(hn::Sub(hn::BitCast(DI(), hi), sixteen)), vd), df, y + j + 16);
    }
  }
}

// block_q2_K: scales[16], qs[64], d, dmin
void BlockQ2K(const uint8_t* b, float* y) {
  const DF df;
  const uint8_t* scales = b;
  const uint8_t* q = b + 16;
  const float d = HalfAt(b + 80), dmin = HalfAt(b + 82);
  const auto three = hn::Set(DU(), 3u);
  int is = 0;
  for (int n = 0; n < 256; n += 128) {
    for (int shift = 0; shift < 8; shift += 2) {
      for (int half = 0; half < 2; ++half) {
        const uint8_t sc = scales[is++];
        const VF dl = hn::Set(df, d * static_cast<float>(sc & 0xF));
        const VF ml = hn::Set(df, dmin * static_cast<float>(sc >> 4));
        for (int l = 0; l < 16; l += Lanes()) {
          const VU v = hn::And(hn::ShiftRightSame(Bytes(q + l + 16 * half), shift), three);
          hn::StoreU(hn::Sub(hn::Mul(dl, ToFloat(v)), ml), df, y + l);
        }
        y += 16;
      }
    }
    q += 32;
  }
}

// block_q3_K: hmask[32], qs[64], scales[12], d
void BlockQ3K(const uint8_t* b, float* y) {
  const DF df;
  const uint8_t* hm = b;
  const uint8_t* q = b + 32;
  const uint8_t* packed = b + 96;
  const float d_all = HalfAt(b + 108);
  int8_t scales[16];
  for (int i = 0; i < 16; ++i) {
    const int low = i < 8 ? (packed[i] & 0xF) : (packed[i - 8] >> 4);
    const int high = (packed[8 + (i % 4)] >> (2 * (i / 4))) & 3;
    scales[i] = static_cast<int8_t>(low | (high << 4));
  }
  const auto three = hn::Set(DU(), 3u), four = hn::Set(DU(), 4u);
  int is = 0;
  uint32_t m = 1;
  for (int n = 0; n < 256; n += 128) {
    for (int shift = 0; shift < 8; shift += 2) {
      const VU vm = hn::Set(DU(), m);
      for (int half = 0; half < 2; ++half) {
        const VF dl = hn::Set(df, d_all * static_cast<float>(scales[is++] - 32));
        for (int l = 0; l < 16; l += Lanes()) {
          const int k = l + 16 * half;
          const VU qv = hn::And(hn::ShiftRightSame(Bytes(q + k), shift), three);
          const VU off = hn::IfThenElseZero(hn::Eq(hn::And(Bytes(hm + k), vm), hn::Zero(DU())), four);
          hn::StoreU(hn::Mul(dl, ToFloat(hn::Sub(hn::BitCast(DI(), qv), hn::BitCast(DI(), off)))), df, y + l);
        }
        y += 16;
      }
      m <<= 1;
    }
    q += 32;
  }
}

// block_q4_K: d, dmin, scales[12], qs[128]
void BlockQ4K(const uint8_t* b, float* y) {
  const DF df;
  const float d = HalfAt(b), dmin = HalfAt(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* q = b + 16;
  const auto low = hn::Set(DU(), 15u);
  for (int is = 0; is < 8; is += 2) {
    uint8_t sc, mn;
    scale_min_k4(is, scales, &sc, &mn);
    const VF d1 = hn::Set(df, d * static_cast<float>(sc)), m1 = hn::Set(df, dmin * static_cast<float>(mn));
    scale_min_k4(is + 1, scales, &sc, &mn);
    const VF d2 = hn::Set(df, d * static_cast<float>(sc)), m2 = hn::Set(df, dmin * static_cast<float>(mn));
    for (int l = 0; l < 32; l += Lanes()) {
      const VU u = Bytes(q + l);
      hn::StoreU(hn::Sub(hn::Mul(d1, ToFloat(hn::And(u, low))), m1), df, y + l);
      hn::StoreU(hn::Sub(hn::Mul(d2, ToFloat(hn::ShiftRight<4>(u))), m2), df, y + 32 + l);
    }
    y += 64;
    q += 32;
  }
}

// block_q5_K: d, dmin, scales[12], qh[32], qs[128]
void BlockQ5K(const uint8_t* b, float* y) {
  const DF df;
  const float d = HalfAt(b), dmin = HalfAt(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* ql = b + 48;
  const auto low = hn::Set(DU(), 15u), sixteen = hn::Set(DU(), 16u);
  uint32_t u1 = 1, u2 = 2;
  for (int is = 0; is < 8; is += 2) {
    uint8_t sc, mn;
    scale_min_k4(is, scales, &sc, &mn);
    const VF d1 = hn::Set(df, d * static_cast<float>(sc)), m1 = hn::Set(df, dmin * static_cast<float>(mn));
    scale_min_k4(is + 1, scales, &sc, &mn);
    const VF d2 = hn::Set(df, d * static_cast<float>(sc)), m2 = hn::Set(df, dmin * static_cast<float>(mn));
    const VU v1 = hn::Set(DU(), u1), v2 = hn::Set(DU(), u2);
    for (int l = 0; l < 32; l += Lanes()) {
      const VU u = Bytes(ql + l), h = Bytes(qh + l);
      const VU lo = hn::Add(hn::And(u, low), hn::IfThenElseZero(hn::Ne(hn::And(h, v1), hn::Zero(DU())), sixteen));
      const VU hi = hn::Add(hn::ShiftRight<4>(u), hn::IfThenElseZero(hn::Ne(hn::And(h, v2), hn::Zero(DU())), sixteen));
      hn::StoreU(hn::Sub(hn::Mul(d1, ToFloat(lo)), m1), df, y + l);
      hn::StoreU(hn::Sub(hn::Mul(d2, ToFloat(hi)), m2), df, y + 32 + l);
    }
    y += 64;
    ql += 32;
    u1 <<= 2;
    u2 <<= 2;
  }
}

// block_q6_K: ql[128], qh[64], scales[16] (int8), d
void BlockQ6K(const uint8_t* b, float* y) {
  const DF df;
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = HalfAt(b + 208);
  const auto low = hn::Set(DU(), 15u), three = hn::Set(DU(), 3u);
  const auto k32 = hn::Set(DI(), 32);
  auto q6 = [&](VU l4, VU h2) { return ToFloat(hn::Sub(hn::BitCast(DI(), hn::Or(l4, hn::ShiftLeft<4>(h2))), k32)); };
  for (int n = 0; n < 256; n += 128) {
    for (int l = 0; l < 32; l += Lanes()) {
      const int is = l / 16;  // lanes <= 16: a vector never straddles l = 16
      const VU a = Bytes(ql + l), c = Bytes(ql + l + 32), h = Bytes(qh + l);
      const VF q1 = q6(hn::And(a, low), hn::And(h, three));
      const VF q2 = q6(hn::And(c, low), hn::And(hn::ShiftRight<2>(h), three));
      const VF q3 = q6(hn::ShiftRight<4>(a), hn::And(hn::ShiftRight<4>(h), three));
      const VF q4 = q6(hn::ShiftRight<4>(c), hn::ShiftRight<6>(h));
      hn::StoreU(hn::Mul(hn::Set(df, d * static_cast<float>(sc[is + 0])), q1), df, y + l);
      hn::StoreU(hn::Mul(hn::Set(df, d * static_cast<float>(sc[is + 2])), q2), df, y + l + 32);
      hn::StoreU(hn::Mul(hn::Set(df, d * static_cast<float>(sc[is + 4])), q3), df, y + l + 64);
      hn::StoreU(hn::Mul(hn::Set(df, d * static_cast<float>(sc[is + 6])), q4), df, y + l + 96);
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

// The signed bytes a, b (8 each) to out[0, 16) (16-byte aligned). One 16-byte vector store,
// so that the vector loads of ScaledBytes that follow are forwarded from it (two 8-byte
// scalar stores read back by one 16-byte load stall the pipeline).
HWY_INLINE void Store16(uint64_t a, uint64_t b, int8_t* out) {
#if HWY_TARGET == HWY_SCALAR
  std::memcpy(out, &a, 8);
  std::memcpy(out + 8, &b, 8);
#else
  const hn::Full128<uint64_t> d64;
  hn::Store(hn::InterleaveLower(d64, hn::Set(d64, a), hn::Set(d64, b)), d64, reinterpret_cast<uint64_t*>(out));
#endif
}

// 16 packed 4-bit codes -> 32 signed bytes (low nibbles, then high) of a 16-entry table: a
// byte shuffle on the SIMD targets, a pair table (byte -> both values) on the scalar one.
HWY_INLINE void Nibbles(const int8_t* values, const uint16_t* pair, const uint8_t* qs, int8_t* out) {
#if HWY_TARGET == HWY_SCALAR
  (void)values;
  for (int j = 0; j < 16; ++j) {
    const uint16_t v = pair[qs[j]];
    out[j] = static_cast<int8_t>(v & 0xFF);
    out[j + 16] = static_cast<int8_t>(v >> 8);
  }
#else
  (void)pair;
  const hn::Full128<uint8_t> d8;
  const auto table = hn::LoadU(d8, reinterpret_cast<const uint8_t*>(values));
  const auto q = hn::LoadU(d8, qs);
  hn::Store(hn::TableLookupBytes(table, hn::And(q, hn::Set(d8, uint8_t{15}))), d8, reinterpret_cast<uint8_t*>(out));
  hn::Store(hn::TableLookupBytes(table, hn::ShiftRight<4>(q)), d8, reinterpret_cast<uint8_t*>(out + 16));
#endif
}

void BlockIq4Nl(const uint8_t* b, float* y) {
  alignas(64) int8_t q[32];
  Nibbles(ggml_grids::iq4nl_values(), tables().iq4nl_pair, b + 2, q);
  ScaledBytes(q, 32, HalfAt(b), y);
}

void BlockMxfp4(const uint8_t* b, float* y) {
  alignas(64) int8_t q[32];
  Nibbles(ggml_grids::mxfp4_values(), tables().mxfp4_pair, b + 1, q);
  ScaledBytes(q, 32, e8m0_half(b[0]), y);
}

// block_iq4_xs: d, scales_h (u16), scales_l[4], qs[128]
void BlockIq4Xs(const uint8_t* b, float* y) {
  const float d = HalfAt(b);
  const uint16_t scales_h = u16_at(b + 2);
  const uint8_t* scales_l = b + 4;
  const uint8_t* qs = b + 8;
  const uint16_t* pair = tables().iq4nl_pair;
  const int8_t* values = ggml_grids::iq4nl_values();
  alignas(64) int8_t q[32];
  for (int ib = 0; ib < 8; ++ib) {
    const int ls = ((scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF) | (((scales_h >> (2 * ib)) & 3) << 4);
    Nibbles(values, pair, qs + 16 * ib, q);
    ScaledBytes(q, 32, d * static_cast<float>(ls - 32), y + 32 * ib);
  }
}

// block_iq2_xxs: d, then per 32 values two u32 (4 grid indexes; 4 sign indexes + scale).
void BlockIq2Xxs(const uint8_t* b, float* y) {
  const Tables& t = tables();
  const float d = HalfAt(b);
  alignas(64) int8_t q[32];
  for (int ib = 0; ib < 8; ++ib) {
    const uint8_t* g = b + 2 + 8 * ib;
    const uint32_t meta = u32_at(g + 4);
    const float db = d * (0.5f + static_cast<float>(meta >> 28)) * 0.25f;
    uint64_t v[4];
    for (int l = 0; l < 4; ++l) v[l] = negate_bytes(t.iq2xxs[g[l]], t.iq2_sign_mask[(meta >> (7 * l)) & 127]);
    Store16(v[0], v[1], q);
    Store16(v[2], v[3], q + 16);
    ScaledBytes(q, 32, db, y + 32 * ib);
  }
}

// block_iq2_xs: d, qs[32] (u16: 9-bit grid index, 7-bit sign index), scales[8].
void BlockIq2Xs(const uint8_t* b, float* y) {
  const Tables& t = tables();
  const float d = HalfAt(b);
  const uint8_t* qs = b + 2;
  const uint8_t* scales = b + 66;
  alignas(64) int8_t q[16];
  for (int i = 0; i < 32; i += 2) {  // two groups of 8 share a scale
    uint64_t v[2];
    for (int k = 0; k < 2; ++k) {
      const uint16_t e = u16_at(qs + 2 * (i + k));
      v[k] = negate_bytes(t.iq2xs[e & 511], t.iq2_sign_mask[e >> 9]);
    }
    Store16(v[0], v[1], q);
    const int sc = (scales[i / 4] >> (4 * ((i / 2) % 2))) & 0xF;
    ScaledBytes(q, 16, d * (0.5f + static_cast<float>(sc)) * 0.25f, y + 8 * i);
  }
}

// block_iq2_s: d, qs[32], signs[32], qh[8], scales[8].
void BlockIq2S(const uint8_t* b, float* y) {
  const Tables& t = tables();
  const float d = HalfAt(b);
  const uint8_t* qs = b + 2;
  const uint8_t* signs = b + 34;
  const uint8_t* qh = b + 66;
  const uint8_t* scales = b + 74;
  alignas(64) int8_t q[16];
  for (int i = 0; i < 32; i += 2) {
    uint64_t v[2];
    for (int k = 0; k < 2; ++k) {
      const int g = i + k;
      const int idx = qs[g] | (((qh[g / 4] >> (2 * (g % 4))) & 3) << 8);
      v[k] = negate_bytes(t.iq2s[idx], t.sign_mask[signs[g]]);
    }
    Store16(v[0], v[1], q);
    const int sc = (scales[i / 4] >> (4 * ((i / 2) % 2))) & 0xF;
    ScaledBytes(q, 16, d * (0.5f + static_cast<float>(sc)) * 0.25f, y + 8 * i);
  }
}

// Four IQ3 values with signs from the low 4 bits of `signs`.
HWY_INLINE uint32_t Quad(uint32_t values, int signs, const Tables& t) {
  const uint32_t m = static_cast<uint32_t>(t.sign_mask[signs & 0xF]);
  return (values ^ m) + (m & 0x01010101u);
}

// block_iq3_xxs: d, qs[64], then per 32 values a u32 (4 sign indexes + scale).
void BlockIq3Xxs(const uint8_t* b, float* y) {
  const Tables& t = tables();
  const float d = HalfAt(b);
  const uint8_t* qs = b + 2;
  const uint8_t* meta = b + 66;
  alignas(64) int8_t q[32];
  for (int ib = 0; ib < 8; ++ib) {
    const uint32_t aux = u32_at(meta + 4 * ib);
    uint64_t v[4];
    for (int l = 0; l < 4; ++l) {
      const uint8_t s = ggml_grids::iq2_signs()[(aux >> (7 * l)) & 127];
      const uint32_t v0 = Quad(t.iq3xxs[qs[8 * ib + 2 * l]], s, t), v1 = Quad(t.iq3xxs[qs[8 * ib + 2 * l + 1]], s >> 4, t);
      v[l] = v0 | uint64_t{v1} << 32;
    }
    Store16(v[0], v[1], q);
    Store16(v[2], v[3], q + 16);
    ScaledBytes(q, 32, d * (0.5f + static_cast<float>(aux >> 28)) * 0.5f, y + 32 * ib);
  }
}

// block_iq3_s: d, qs[64], qh[8], signs[32], scales[4].
void BlockIq3S(const uint8_t* b, float* y) {
  const Tables& t = tables();
  const float d = HalfAt(b);
  const uint8_t* qs = b + 2;
  const uint8_t* qh = b + 66;
  const uint8_t* signs = b + 74;
  const uint8_t* scales = b + 106;
  alignas(64) int8_t q[32];
  for (int ib = 0; ib < 8; ++ib) {
    const int sc = (scales[ib / 2] >> (4 * (ib % 2))) & 0xF;
    uint64_t v[4];
    for (int l = 0; l < 4; ++l) {
      const int k = 8 * ib + 2 * l;
      const int i0 = qs[k] | (((qh[k / 8] >> (k % 8)) & 1) << 8);
      const int i1 = qs[k + 1] | (((qh[(k + 1) / 8] >> ((k + 1) % 8)) & 1) << 8);
      const uint8_t s = signs[4 * ib + l];
      const uint32_t v0 = Quad(t.iq3s[i0], s, t), v1 = Quad(t.iq3s[i1], s >> 4, t);
      v[l] = v0 | uint64_t{v1} << 32;
    }
    Store16(v[0], v[1], q);
    Store16(v[2], v[3], q + 16);
    ScaledBytes(q, 32, d * static_cast<float>(1 + 2 * sc), y + 32 * ib);
  }
}

// Element types (block 1): n values from p.
void Floats(GgmlType type, const uint8_t* p, int64_t n, float* y) {
  const DF df;
  const int64_t N = Lanes();
  int64_t i = 0;
  switch (type) {
    case GgmlType::F32:
      std::memcpy(y, p, static_cast<size_t>(n) * 4);
      return;
    case GgmlType::BF16: {
      const hn::Rebind<uint16_t, DF> d16;
      for (; i + N <= n; i += N) {
        const VU u = hn::PromoteTo(DU(), hn::LoadU(d16, reinterpret_cast<const uint16_t*>(p + 2 * i)));
        hn::StoreU(hn::BitCast(df, hn::ShiftLeft<16>(u)), df, y + i);
      }
      for (; i < n; ++i) y[i] = bf16_to_f32(u16_at(p + 2 * i));
      return;
    }
    case GgmlType::F16: {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
      // F16C (exact, Inf / NaN included). The targets without it emulate the conversion, which
      // reads exponent 31 as a finite number: those take the scalar conversion.
      const hn::Rebind<hwy::float16_t, DF> dh;
      for (; i + N <= n; i += N) {
        hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(p + 2 * i))), df, y + i);
      }
#endif
      for (; i < n; ++i) y[i] = f16_to_f32(u16_at(p + 2 * i));
      return;
    }
    default:
      dequantize_ggml(type, p, n, y);
  }
}

template <void (*kBlock)(const uint8_t*, float*)>
HWY_INLINE void Blocks(const uint8_t* p, int64_t blocks, int64_t block_bytes, int64_t block, float* y) {
  for (int64_t i = 0; i < blocks; ++i) kBlock(p + i * block_bytes, y + i * block);
}

void Decode(GgmlType type, const uint8_t* row, int64_t e0, int64_t e1, float* out) {
  const auto info = ggml_type_info(static_cast<uint32_t>(type));
  if (!info || info->block <= 0) return dequantize_ggml(type, row, e1 - e0, out);  // throws the error
  const int64_t bs = info->block, bb = info->block_bytes;
  const uint8_t* p = row + e0 / bs * bb;
  const int64_t nb = (e1 - e0) / bs;
  switch (type) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16: return Floats(type, p, e1 - e0, out);
    case GgmlType::Q8_0: return Blocks<BlockQ8_0>(p, nb, bb, bs, out);
    case GgmlType::Q4_0: return Blocks<BlockQ4<false>>(p, nb, bb, bs, out);
    case GgmlType::Q4_1: return Blocks<BlockQ4<true>>(p, nb, bb, bs, out);
    case GgmlType::Q5_0: return Blocks<BlockQ5<false>>(p, nb, bb, bs, out);
    case GgmlType::Q5_1: return Blocks<BlockQ5<true>>(p, nb, bb, bs, out);
    case GgmlType::Q2_K: return Blocks<BlockQ2K>(p, nb, bb, bs, out);
    case GgmlType::Q3_K: return Blocks<BlockQ3K>(p, nb, bb, bs, out);
    case GgmlType::Q4_K: return Blocks<BlockQ4K>(p, nb, bb, bs, out);
    case GgmlType::Q5_K: return Blocks<BlockQ5K>(p, nb, bb, bs, out);
    case GgmlType::Q6_K: return Blocks<BlockQ6K>(p, nb, bb, bs, out);
    case GgmlType::IQ4_NL: return Blocks<BlockIq4Nl>(p, nb, bb, bs, out);
    case GgmlType::IQ4_XS: return Blocks<BlockIq4Xs>(p, nb, bb, bs, out);
    case GgmlType::MXFP4: return Blocks<BlockMxfp4>(p, nb, bb, bs, out);
    case GgmlType::IQ2_XXS: return Blocks<BlockIq2Xxs>(p, nb, bb, bs, out);
    case GgmlType::IQ2_XS: return Blocks<BlockIq2Xs>(p, nb, bb, bs, out);
    case GgmlType::IQ2_S: return Blocks<BlockIq2S>(p, nb, bb, bs, out);
    case GgmlType::IQ3_XXS: return Blocks<BlockIq3Xxs>(p, nb, bb, bs, out);
    case GgmlType::IQ3_S: return Blocks<BlockIq3S>(p, nb, bb, bs, out);
    default: return dequantize_ggml(type, p, e1 - e0, out);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace dsv4::ggml_kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace dsv4::ggml_kernels {

HWY_EXPORT(Decode);

bool has_simd_decoder(GgmlType type) {
  switch (type) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16: case GgmlType::Q8_0: case GgmlType::Q4_0:
    case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1: case GgmlType::Q2_K: case GgmlType::Q3_K:
    case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K: case GgmlType::IQ4_NL: case GgmlType::IQ4_XS:
    case GgmlType::MXFP4: case GgmlType::IQ2_XXS: case GgmlType::IQ2_XS: case GgmlType::IQ2_S:
    case GgmlType::IQ3_XXS: case GgmlType::IQ3_S:
      return true;
    default:
      return false;
  }
}

void decode(GgmlType type, const uint8_t* row, int64_t e0, int64_t e1, float* out) {
  HWY_DYNAMIC_DISPATCH(Decode)(type, row, e0, e1, out);
}

}  // namespace dsv4::ggml_kernels
#endif  // HWY_ONCE
