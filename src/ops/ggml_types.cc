#include "ops/ggml_types.h"

#include <bit>
#include <cmath>
#include <algorithm>
#include <cstring>

#include "base/error.h"
#include "ops/formats.h"

namespace dsv4 {
namespace {

constexpr int64_t kQK = 256;  // super-block of the k-quants and IQ4_XS

inline uint16_t u16_at(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline uint32_t u32_at(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline float half_at(const uint8_t* p) { return f16_to_f32(u16_at(p)); }

// Non-linear 4-bit grids (ggml's kvalues_iq4nl; kvalues_mxfp4 = 2 x E2M1 with a halved scale).
constexpr int8_t kIq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
constexpr int8_t kMxfp4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// ggml's E8M0 -> FP32 with the exponent lowered by one: 2^(e - 128), subnormal for e < 2.
inline float e8m0_half(uint8_t e) {
  const uint32_t bits = e < 2 ? (0x00200000u << e) : (static_cast<uint32_t>(e - 1) << 23);
  return std::bit_cast<float>(bits);
}

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

// Each decoder handles one block at `b`, writing block-size values to y. The arithmetic is
// written in ggml's order (this file is compiled without FP contraction), so every value is
// rounded exactly where ggml rounds it.
void block_q4_0(const uint8_t* b, float* y) {
  const float d = half_at(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((qs[j] & 0xF) - 8) * d;
    y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
  }
}
void block_q4_1(const uint8_t* b, float* y) {
  const float d = half_at(b), m = half_at(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(qs[j] & 0xF) * d + m;
    y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
  }
}
void block_q5_0(const uint8_t* b, float* y) {
  const float d = half_at(b);
  const uint32_t qh = u32_at(b + 2);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < 16; ++j) {
    const int lo = static_cast<int>((qs[j] & 0xF) | (((qh >> j) & 1u) << 4)) - 16;
    const int hi = static_cast<int>((qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4)) - 16;
    y[j] = static_cast<float>(lo) * d;
    y[j + 16] = static_cast<float>(hi) * d;
  }
}
void block_q5_1(const uint8_t* b, float* y) {
  const float d = half_at(b), m = half_at(b + 2);
  const uint32_t qh = u32_at(b + 4);
  const uint8_t* qs = b + 8;
  for (int j = 0; j < 16; ++j) {
    const unsigned lo = (qs[j] & 0xFu) | (((qh >> j) & 1u) << 4);
    const unsigned hi = (qs[j] >> 4u) | (((qh >> (j + 16)) & 1u) << 4);
    y[j] = static_cast<float>(lo) * d + m;
    y[j + 16] = static_cast<float>(hi) * d + m;
  }
}
void block_q8_0(const uint8_t* b, float* y) {
  const float d = half_at(b);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
}
void block_mxfp4(const uint8_t* b, float* y) {
  const float d = e8m0_half(b[0]);
  const uint8_t* qs = b + 1;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(kMxfp4[qs[j] & 0xF]) * d;
    y[j + 16] = static_cast<float>(kMxfp4[qs[j] >> 4]) * d;
  }
}
void block_iq4_nl(const uint8_t* b, float* y) {
  const float d = half_at(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>(kIq4nl[qs[j] & 0xF]);
    y[j + 16] = d * static_cast<float>(kIq4nl[qs[j] >> 4]);
  }
}
// block_q2_K: scales[16], qs[64], d, dmin
void block_q2_k(const uint8_t* b, float* y) {
  const uint8_t* scales = b;
  const uint8_t* q = b + 16;
  const float d = half_at(b + 80), dmin = half_at(b + 82);
  int is = 0;
  for (int n = 0; n < kQK; n += 128) {
    for (int shift = 0; shift < 8; shift += 2) {
      for (int half = 0; half < 2; ++half) {
        const uint8_t sc = scales[is++];
        const float dl = d * static_cast<float>(sc & 0xF), ml = dmin * static_cast<float>(sc >> 4);
        for (int l = 0; l < 16; ++l) *y++ = dl * static_cast<float>((q[l + 16 * half] >> shift) & 3) - ml;
      }
    }
    q += 32;
  }
}
// block_q3_K: hmask[32], qs[64], scales[12], d
void block_q3_k(const uint8_t* b, float* y) {
  const uint8_t* hm = b;
  const uint8_t* q = b + 32;
  const uint8_t* packed = b + 96;
  const float d_all = half_at(b + 108);
  // 16 six-bit scales: low 4 bits from bytes 0..7 (two per byte), high 2 bits from bytes 8..11.
  int8_t scales[16];
  for (int i = 0; i < 16; ++i) {
    const int low = i < 8 ? (packed[i] & 0xF) : (packed[i - 8] >> 4);
    const int high = (packed[8 + (i % 4)] >> (2 * (i / 4))) & 3;
    scales[i] = static_cast<int8_t>(low | (high << 4));
  }
  int is = 0;
  uint8_t m = 1;
  for (int n = 0; n < kQK; n += 128) {
    for (int shift = 0; shift < 8; shift += 2) {
      for (int half = 0; half < 2; ++half) {
        const float dl = d_all * static_cast<float>(scales[is++] - 32);
        for (int l = 0; l < 16; ++l) {
          const int k = l + 16 * half;
          const int v = ((q[k] >> shift) & 3) - ((hm[k] & m) ? 0 : 4);
          *y++ = dl * static_cast<float>(v);
        }
      }
      m = static_cast<uint8_t>(m << 1);
    }
    q += 32;
  }
}
// block_q4_K: d, dmin, scales[12], qs[128]
void block_q4_k(const uint8_t* b, float* y) {
  const float d = half_at(b), dmin = half_at(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* q = b + 16;
  for (int is = 0; is < 8; is += 2) {
    uint8_t sc, mn;
    scale_min_k4(is, scales, &sc, &mn);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(mn);
    scale_min_k4(is + 1, scales, &sc, &mn);
    const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(mn);
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    q += 32;
  }
}
// block_q5_K: d, dmin, scales[12], qh[32], qs[128]
void block_q5_k(const uint8_t* b, float* y) {
  const float d = half_at(b), dmin = half_at(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* ql = b + 48;
  uint8_t u1 = 1, u2 = 2;
  for (int is = 0; is < 8; is += 2) {
    uint8_t sc, mn;
    scale_min_k4(is, scales, &sc, &mn);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(mn);
    scale_min_k4(is + 1, scales, &sc, &mn);
    const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(mn);
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>((ql[l] & 0xF) + ((qh[l] & u1) ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
    ql += 32;
    u1 = static_cast<uint8_t>(u1 << 2);
    u2 = static_cast<uint8_t>(u2 << 2);
  }
}
// block_q6_K: ql[128], qh[64], scales[16] (int8), d
void block_q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = half_at(b + 208);
  for (int n = 0; n < kQK; n += 128) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
      y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
      y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
      y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}
// block_iq4_xs: d, scales_h (u16), scales_l[4], qs[128]
void block_iq4_xs(const uint8_t* b, float* y) {
  const float d = half_at(b);
  const uint16_t scales_h = u16_at(b + 2);
  const uint8_t* scales_l = b + 4;
  const uint8_t* qs = b + 8;
  for (int ib = 0; ib < 8; ++ib) {
    const int ls = ((scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF) | (((scales_h >> (2 * ib)) & 3) << 4);
    const float dl = d * static_cast<float>(ls - 32);
    for (int j = 0; j < 16; ++j) {
      y[j] = dl * static_cast<float>(kIq4nl[qs[j] & 0xF]);
      y[j + 16] = dl * static_cast<float>(kIq4nl[qs[j] >> 4]);
    }
    y += 32;
    qs += 16;
  }
}

using BlockFn = void (*)(const uint8_t*, float*);

struct Entry {
  uint32_t id;
  GgmlTypeInfo info;
  BlockFn fn;  // null: element types handled directly, or not dequantizable
};

constexpr Entry kTypes[] = {
    {0, {"f32", 1, 4, true}, nullptr},
    {1, {"f16", 1, 2, true}, nullptr},
    {2, {"q4_0", 32, 18, true}, block_q4_0},
    {3, {"q4_1", 32, 20, true}, block_q4_1},
    {6, {"q5_0", 32, 22, true}, block_q5_0},
    {7, {"q5_1", 32, 24, true}, block_q5_1},
    {8, {"q8_0", 32, 34, true}, block_q8_0},
    {9, {"q8_1", 32, 36, false}, nullptr},
    {10, {"q2_K", 256, 84, true}, block_q2_k},
    {11, {"q3_K", 256, 110, true}, block_q3_k},
    {12, {"q4_K", 256, 144, true}, block_q4_k},
    {13, {"q5_K", 256, 176, true}, block_q5_k},
    {14, {"q6_K", 256, 210, true}, block_q6_k},
    {15, {"q8_K", 256, 292, false}, nullptr},
    {16, {"iq2_xxs", 256, 66, false}, nullptr},
    {17, {"iq2_xs", 256, 74, false}, nullptr},
    {18, {"iq3_xxs", 256, 98, false}, nullptr},
    {19, {"iq1_s", 256, 50, false}, nullptr},
    {20, {"iq4_nl", 32, 18, true}, block_iq4_nl},
    {21, {"iq3_s", 256, 110, false}, nullptr},
    {22, {"iq2_s", 256, 82, false}, nullptr},
    {23, {"iq4_xs", 256, 136, true}, block_iq4_xs},
    {24, {"i8", 1, 1, false}, nullptr},
    {25, {"i16", 1, 2, false}, nullptr},
    {26, {"i32", 1, 4, false}, nullptr},
    {27, {"i64", 1, 8, false}, nullptr},
    {28, {"f64", 1, 8, false}, nullptr},
    {29, {"iq1_m", 256, 56, false}, nullptr},
    {30, {"bf16", 1, 2, true}, nullptr},
    {34, {"tq1_0", 256, 54, false}, nullptr},
    {35, {"tq2_0", 256, 66, false}, nullptr},
    {39, {"mxfp4", 32, 17, true}, block_mxfp4},
};

const Entry* find_entry(uint32_t id) {
  for (const Entry& e : kTypes)
    if (e.id == id) return &e;
  return nullptr;
}

}  // namespace

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
  if (exp == 0x1F) return std::bit_cast<float>(sign | 0x7F800000u | (mant << 13));  // inf / NaN
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24, exact in FP32.
    const float v = static_cast<float>(mant) * 0x1p-24f;
    return sign ? -v : v;
  }
  return std::bit_cast<float>(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t f32_to_f16(float x) {
  const uint32_t u = std::bit_cast<uint32_t>(x);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000);
  const uint32_t abs = u & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00 | ((abs >> 13) & 0x3FF));  // NaN
  if (abs >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00);  // rounds to >= 65520: inf
  if (abs < 0x38800000u) {
    // Half subnormal (or zero): value / 2^-24 rounded to nearest even, in float arithmetic
    // (exact: the quotient is a power-of-two scaling, nearbyint rounds half to even).
    const float q = std::nearbyint(std::bit_cast<float>(abs) * 0x1p24f);
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(q));  // q == 1024 is the smallest normal
  }
  // Normal: drop 13 mantissa bits with round to nearest even; a carry moves into the exponent.
  const uint32_t rebased = abs - (112u << 23);
  const uint32_t rounded = rebased + 0xFFFu + ((rebased >> 13) & 1u);
  return static_cast<uint16_t>(sign | (rounded >> 13));
}

bool ggml_quantizable(GgmlType type) {
  switch (type) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16:
    case GgmlType::Q8_0:
      return true;
    default:
      return false;
  }
}

void quantize_ggml(GgmlType type, const float* x, int64_t n, uint8_t* out) {
  switch (type) {
    case GgmlType::F32:
      std::memcpy(out, x, static_cast<size_t>(n) * 4);
      return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_f16(x[i]);
        std::memcpy(out + 2 * i, &h, 2);
      }
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_bf16(x[i]);
        std::memcpy(out + 2 * i, &h, 2);
      }
      return;
    case GgmlType::Q8_0: {
      if (n % 32 != 0) throw Error("quantize q8_0: " + std::to_string(n) + " values, not a multiple of 32");
      for (int64_t b = 0; b < n / 32; ++b) {
        const float* v = x + 32 * b;
        uint8_t* blk = out + 34 * b;
        float amax = 0.0f;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(v[j]));
        for (int j = 0; j < 32; ++j)
          if (!std::isfinite(v[j])) throw Error("quantize q8_0: value " + std::to_string(v[j]) + " at " + std::to_string(32 * b + j) + " is not finite");
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const uint16_t dh = f32_to_f16(d);
        std::memcpy(blk, &dh, 2);
        for (int j = 0; j < 32; ++j) blk[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::round(v[j] * id)));
      }
      return;
    }
    default:
      throw Error("cannot quantize to ggml type " + ggml_type_name(static_cast<uint32_t>(type)) +
                  " (convert targets: f32, f16, bf16, q8_0; mxfp4 for FP4 experts)");
  }
}

std::optional<GgmlTypeInfo> ggml_type_info(uint32_t type) {
  const Entry* e = find_entry(type);
  if (!e) return std::nullopt;
  return e->info;
}

std::string ggml_type_name(uint32_t type) {
  const Entry* e = find_entry(type);
  return e ? std::string(e->info.name) : "type " + std::to_string(type);
}

int64_t ggml_row_bytes(GgmlType type, int64_t n) {
  const Entry* e = find_entry(static_cast<uint32_t>(type));
  if (!e) throw Error("ggml_row_bytes: unknown ggml type " + std::to_string(static_cast<uint32_t>(type)));
  return n / e->info.block * e->info.block_bytes;
}

void dequantize_ggml(GgmlType type, const uint8_t* src, int64_t n, float* out) {
  const Entry* e = find_entry(static_cast<uint32_t>(type));
  if (!e || !e->info.dequantizable) {
    throw Error("cannot dequantize ggml type " + ggml_type_name(static_cast<uint32_t>(type)) + " (not supported)");
  }
  if (n % e->info.block != 0) {
    throw Error("dequantize " + std::string(e->info.name) + ": " + std::to_string(n) + " elements, not a multiple of " +
                std::to_string(e->info.block));
  }
  switch (type) {
    case GgmlType::F32:
      std::memcpy(out, src, static_cast<size_t>(n) * 4);
      return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(u16_at(src + 2 * i));
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(u16_at(src + 2 * i));
      return;
    default:
      break;
  }
  const int64_t blocks = n / e->info.block;
  for (int64_t i = 0; i < blocks; ++i) e->fn(src + i * e->info.block_bytes, out + i * e->info.block);
}

}  // namespace dsv4
