// Small helpers shared by the forward-pass modules.
#pragma once
#include <cstdint>
#include <cstring>

#include "base/error.h"
#include "model/safetensors.h"
#include "ops/formats.h"
#include "ops/numerics.h"
#include "ops/weight_matrix.h"

namespace dsv4 {

inline bool is_ref(Numerics nm) { return nm == Numerics::kReference; }

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
inline const uint16_t* bf16_data(const Tensor* t) { return reinterpret_cast<const uint16_t*>(t->data); }

// A 2-D F32 or BF16 tensor as an ops weight matrix.
inline WeightMatrix matrix_of(const Tensor* t) {
  WeightMatrix m;
  if (t->dtype == DType::F32)
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
