// ggml tensor types (the element encodings of GGUF files): their ids, block geometry and an
// exact dequantisation to FP32 that gives the same bits as ggml's reference dequantisation
// (dequantize_row_* in ggml-quants.c; gguf-py's numpy port), tested against vectors that
// gguf-py generated (tests/data/gguf).
#pragma once
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

namespace dsv4 {

// Values are ggml's `enum ggml_type` ids (stored in GGUF tensor infos).
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
};

struct GgmlTypeInfo {
  const char* name = nullptr;  // ggml's name ("q8_0", ...)
  int64_t block = 0;           // elements per block
  int64_t block_bytes = 0;     // bytes per block
  bool dequantizable = false;  // dequantize_ggml supports it (float types and quants)
};

// Info for a known type id, or nullopt (an id ggml does not define / we do not know).
std::optional<GgmlTypeInfo> ggml_type_info(uint32_t type);
std::string ggml_type_name(uint32_t type);  // "q8_0", or "type 123" for unknown ids
// Bytes of a row of n elements (n must be a multiple of the block; checked by callers).
int64_t ggml_row_bytes(GgmlType type, int64_t n);

// Dequantises n elements (a multiple of the type's block) starting at src into out.
// Throws Error for types that are not dequantizable.
void dequantize_ggml(GgmlType type, const uint8_t* src, int64_t n, float* out);

float f16_to_f32(uint16_t h);  // IEEE half, exact (subnormals, inf, NaN)

// Unaligned little-endian reads of block fields (the scalar and SIMD decoders share them).
namespace ggml_bytes {
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
// ggml's E8M0 -> FP32 with the exponent lowered by one (MXFP4's scale): 2^(e - 128),
// subnormal for e < 2.
inline float e8m0_half(uint8_t e) {
  const uint32_t bits = e < 2 ? (0x00200000u << e) : (static_cast<uint32_t>(e - 1) << 23);
  return std::bit_cast<float>(bits);
}
}  // namespace ggml_bytes
uint16_t f32_to_f16(float x);  // round to nearest even, overflow to infinity, NaN kept

// Whether quantize_ggml can write this type (the `dsv4 convert` targets).
bool ggml_quantizable(GgmlType type);
// Quantises n values (a multiple of the block) into out (ggml_row_bytes(type, n) bytes) the way
// ggml's reference quantisers do (Q8_0: d = max|x| / 127, q = round-half-away(x / d); Q4_K and
// Q2_K: quantize_row_q4_K_ref / quantize_row_q2_K_ref, the searched affine fit per sub-block). F32 /
// BF16 / F16 are conversions (BF16 and F16 round to nearest even). Throws Error for other types
// and for non-finite values.
void quantize_ggml(GgmlType type, const float* x, int64_t n, uint8_t* out);

}  // namespace dsv4
