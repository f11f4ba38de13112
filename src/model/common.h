// Small helpers shared by the forward-pass modules.
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

#include "base/error.h"
#include "model/safetensors.h"
#include "ops/formats.h"
#include "ops/int8_dot.h"
#include "ops/numerics.h"
#include "ops/weight_matrix.h"

namespace dsv4 {

inline bool is_ref(Numerics nm) { return nm == Numerics::kReference; }

// The products the official code computes in FP32 (LM head, router gate, compressor wkv /
// wgate, mHC mixes) take exact double sums (kReference with LinearCompute::kFp32) in the
// reference and precise modes; in the int8 mode, int8 block products where the weight is a
// GGUF Q8_0 / MXFP4 one (ops/int8_dot.h).
inline Numerics fp32_product_numerics(Numerics nm, const WeightMatrix& w) {
  return nm == Numerics::kInt8 && int8_dot::supports(w) ? Numerics::kInt8 : Numerics::kReference;
}

// Reference mode holds these values in BF16: round them.
inline void round_ref(float* x, int64_t n, Numerics nm) {
  if (!is_ref(nm)) return;
  for (int64_t i = 0; i < n; ++i) x[i] = round_bf16(x[i]);
}
inline float round_ref(float x, Numerics nm) { return is_ref(nm) ? round_bf16(x) : x; }

// F32 tensor element (the mapped data need not be 4-byte aligned).
inline float f32_at(const Tensor* t, int64_t i) {
  float v;
  std::memcpy(&v, t->data + 4 * i, 4);
  return v;
}
inline void copy_f32(const Tensor* t, int64_t offset, int64_t n, float* out) {
  std::memcpy(out, t->data + 4 * offset, static_cast<size_t>(4 * n));
}
inline int64_t i64_at(const Tensor* t, int64_t i) {
  int64_t v;
  std::memcpy(&v, t->data + 8 * i, 8);
  return v;
}
// A BF16 vector tensor (norm weights) as an aligned uint16_t array. Tensors in a mapped
// safetensors file can start at any byte offset; a misaligned one is copied into `buf`
// (valid until the next call with the same buffer).
inline const uint16_t* bf16_data(const Tensor* t, std::vector<uint16_t>& buf) {
  if (reinterpret_cast<uintptr_t>(t->data) % alignof(uint16_t) == 0) return reinterpret_cast<const uint16_t*>(t->data);
  const size_t n = t->nbytes / 2;
  if (buf.size() < n) buf.resize(n);
  std::memcpy(buf.data(), t->data, n * 2);
  return buf.data();
}

// Row `row` of a BF16 matrix tensor [rows, n] as FP32 (unaligned-safe).
inline void bf16_row(const Tensor* t, int64_t row, int64_t n, float* out) {
  const uint8_t* src = t->data + 2 * row * n;
  for (int64_t i = 0; i < n; ++i) {
    uint16_t b;
    std::memcpy(&b, src + 2 * i, 2);
    out[i] = bf16_to_f32(b);
  }
}

// Row `row` of the embedding table (BF16, or ggml-typed from a GGUF file) as FP32.
inline void embed_row(const Tensor* t, int64_t row, int64_t n, float* out) {
  if (t->ggml_type < 0) return bf16_row(t, row, n, out);
  const GgmlType type = static_cast<GgmlType>(t->ggml_type);
  dequantize_ggml(type, t->data + row * ggml_row_bytes(type, n), n, out);
}

// A 2-D F32 or BF16 tensor (or a ggml-typed one from a GGUF file, standing for BF16) as an ops
// weight matrix.
inline WeightMatrix matrix_of(const Tensor* t) {
  WeightMatrix m;
  if (t->ggml_type >= 0) {
    m.format = WeightFormat::kGgml;
    m.ggml_type = static_cast<GgmlType>(t->ggml_type);
    m.ggml_role = WeightFormat::kBf16;
    if (m.ggml_type == GgmlType::BF16) m.format = WeightFormat::kBf16;
  } else if (t->dtype == DType::F32)
    m.format = WeightFormat::kF32;
  else if (t->dtype == DType::BF16)
    m.format = WeightFormat::kBf16;
  else
    throw Error("tensor " + t->name + ": expected F32 or BF16 matrix");
  m.data = t->data;
  m.rows = t->dim(0);
  m.cols = t->numel() / t->dim(0);
  m.total_rows = m.rows;
  return m;
}

}  // namespace dsv4
