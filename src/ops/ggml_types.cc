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

// IQ2_XXS: the format's codebook (ggml's iq2xxs_grid, in the 2-bit packed form gguf-py stores
// it) and sign patterns (ggml's ksigns_iq2xs: 7 stored bits + parity bit 7).
// iq2xxs grid: 256 entries of 8 two-bit indexes (element j = bits 2j..2j+1) into {8, 25, 43}
constexpr uint16_t kIq2xxsGrid[256] = {
    0x0000, 0x0002, 0x0005, 0x0008, 0x000a, 0x0011, 0x0014, 0x0020, 0x0022, 0x0028, 0x002a, 0x0041,
    0x0044, 0x0050, 0x0058, 0x0061, 0x0064, 0x0080, 0x0082, 0x008a, 0x00a2, 0x0101, 0x0104, 0x0110,
    0x0115, 0x0140, 0x0184, 0x0198, 0x0200, 0x0202, 0x0222, 0x0282, 0x0401, 0x0404, 0x0410, 0x0421,
    0x0424, 0x0440, 0x0442, 0x0448, 0x0460, 0x0481, 0x0484, 0x0490, 0x04a4, 0x0500, 0x0502, 0x0508,
    0x0520, 0x0546, 0x0569, 0x0580, 0x0591, 0x0609, 0x0610, 0x0640, 0x0684, 0x06a4, 0x0800, 0x0805,
    0x0808, 0x0814, 0x0828, 0x0841, 0x0844, 0x0850, 0x0852, 0x0888, 0x0904, 0x0940, 0x0a02, 0x0a14,
    0x1001, 0x1004, 0x1010, 0x1021, 0x1040, 0x1060, 0x1084, 0x1090, 0x1095, 0x1100, 0x1108, 0x1120,
    0x1150, 0x115a, 0x1180, 0x1224, 0x1245, 0x1400, 0x1408, 0x1420, 0x1425, 0x1449, 0x1480, 0x1518,
    0x1562, 0x1600, 0x1616, 0x1801, 0x1804, 0x1810, 0x1840, 0x1881, 0x1900, 0x1905, 0x19a0, 0x1a51,
    0x2000, 0x2002, 0x200a, 0x2044, 0x2061, 0x2080, 0x2082, 0x2129, 0x2148, 0x2200, 0x2202, 0x2401,
    0x2404, 0x2410, 0x2440, 0x2456, 0x2500, 0x2541, 0x2564, 0x2690, 0x2808, 0x2820, 0x2894, 0x2a44,
    0x4001, 0x4004, 0x4010, 0x4018, 0x4021, 0x4024, 0x4040, 0x4048, 0x4056, 0x4060, 0x4081, 0x4084,
    0x4090, 0x4100, 0x4120, 0x4161, 0x4180, 0x4185, 0x4201, 0x4210, 0x4248, 0x4256, 0x4268, 0x4400,
    0x4408, 0x4420, 0x4480, 0x4499, 0x4512, 0x4524, 0x4600, 0x4801, 0x4804, 0x4810, 0x4840, 0x4845,
    0x4900, 0x4958, 0x4961, 0x4982, 0x4a45, 0x4a90, 0x5000, 0x5008, 0x5011, 0x5019, 0x5020, 0x5080,
    0x5088, 0x5104, 0x5142, 0x51a4, 0x5291, 0x5490, 0x5492, 0x550a, 0x5601, 0x5654, 0x5800, 0x5811,
    0x5819, 0x5864, 0x5940, 0x5a08, 0x6004, 0x6010, 0x6040, 0x6068, 0x6100, 0x6155, 0x6218, 0x6260,
    0x6400, 0x6405, 0x6510, 0x6512, 0x6584, 0x6842, 0x8000, 0x8002, 0x800a, 0x8041, 0x8082, 0x8104,
    0x8118, 0x8140, 0x8211, 0x8401, 0x8404, 0x8410, 0x8415, 0x8440, 0x8460, 0x8500, 0x8546, 0x8594,
    0x8609, 0x8640, 0x8660, 0x8802, 0x8904, 0x8a11, 0x9004, 0x9010, 0x9024, 0x9040, 0x90a1, 0x9116,
    0x9180, 0x9245, 0x9400, 0x9422, 0x9444, 0x9551, 0x9881, 0x9920, 0xa002, 0xa050, 0xa085, 0xa109,
    0xa200, 0xa418, 0xa850, 0xa904,
};
constexpr uint8_t kIq2Signs[128] = {
    0x00, 0x81, 0x82, 0x03, 0x84, 0x05, 0x06, 0x87, 0x88, 0x09, 0x0a, 0x8b, 0x0c, 0x8d, 0x8e, 0x0f,
    0x90, 0x11, 0x12, 0x93, 0x14, 0x95, 0x96, 0x17, 0x18, 0x99, 0x9a, 0x1b, 0x9c, 0x1d, 0x1e, 0x9f,
    0xa0, 0x21, 0x22, 0xa3, 0x24, 0xa5, 0xa6, 0x27, 0x28, 0xa9, 0xaa, 0x2b, 0xac, 0x2d, 0x2e, 0xaf,
    0x30, 0xb1, 0xb2, 0x33, 0xb4, 0x35, 0x36, 0xb7, 0xb8, 0x39, 0x3a, 0xbb, 0x3c, 0xbd, 0xbe, 0x3f,
    0xc0, 0x41, 0x42, 0xc3, 0x44, 0xc5, 0xc6, 0x47, 0x48, 0xc9, 0xca, 0x4b, 0xcc, 0x4d, 0x4e, 0xcf,
    0x50, 0xd1, 0xd2, 0x53, 0xd4, 0x55, 0x56, 0xd7, 0xd8, 0x59, 0x5a, 0xdb, 0x5c, 0xdd, 0xde, 0x5f,
    0x60, 0xe1, 0xe2, 0x63, 0xe4, 0x65, 0x66, 0xe7, 0xe8, 0x69, 0x6a, 0xeb, 0x6c, 0xed, 0xee, 0x6f,
    0xf0, 0x71, 0x72, 0xf3, 0x74, 0xf5, 0xf6, 0x77, 0x78, 0xf9, 0xfa, 0x7b, 0xfc, 0x7d, 0x7e, 0xff,
};
constexpr uint8_t kIq2GridValues[3] = {8, 25, 43};

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

// block_iq2_xxs: d, then 8 groups of 32 values, each two u32: four grid indexes (bytes of the
// first), and in the second four 7-bit sign indexes (bits 7l..7l+6) and a 4-bit scale (bits
// 28..31). Every product is exact (scale, grid value and sign have few significant bits).
void block_iq2_xxs(const uint8_t* b, float* y) {
  const float d = half_at(b);
  for (int ib = 0; ib < 8; ++ib) {
    const uint8_t* q = b + 2 + 8 * ib;
    const uint32_t meta = u32_at(q + 4);
    const float db = d * (0.5f + static_cast<float>(meta >> 28)) * 0.25f;
    for (int l = 0; l < 4; ++l) {
      const uint16_t entry = kIq2xxsGrid[q[l]];
      const uint8_t signs = kIq2Signs[(meta >> (7 * l)) & 127];
      for (int j = 0; j < 8; ++j) {
        const float g = static_cast<float>(kIq2GridValues[(entry >> (2 * j)) & 3]);
        y[j] = db * g * ((signs >> j) & 1 ? -1.0f : 1.0f);
      }
      y += 8;
    }
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
    {16, {"iq2_xxs", 256, 66, true}, block_iq2_xxs},
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
