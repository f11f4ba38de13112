// Random stored weights of each format and activations for the linear tests.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "ops/formats.h"
#include "ops/weight_matrix.h"

namespace dsv4 {

// Random stored weights of each format, owning their bytes.
struct Stored {
  std::vector<uint8_t> data;
  std::vector<uint8_t> scale;
  WeightMatrix w;
};

inline Stored make_fp8(int64_t rows, int64_t cols, std::mt19937& rng) {
  Stored s;
  s.data.resize(static_cast<size_t>(rows * cols));
  for (uint8_t& c : s.data) {
    do c = static_cast<uint8_t>(rng()); while ((c & 0x7F) == 0x7F);
  }
  const int64_t sr = (rows + 127) / 128, sc = (cols + 127) / 128;
  s.scale.resize(static_cast<size_t>(sr * sc));
  for (uint8_t& c : s.scale) c = static_cast<uint8_t>(118 + rng() % 6);
  s.w.format = WeightFormat::kFp8Block;
  s.w.data = s.data.data();
  s.w.scale = s.scale.data();
  s.w.rows = s.w.total_rows = rows;
  s.w.cols = cols;
  return s;
}

inline Stored make_fp4(int64_t rows, int64_t cols, std::mt19937& rng) {
  Stored s;
  s.data.resize(static_cast<size_t>(rows * cols / 2));
  for (uint8_t& c : s.data) c = static_cast<uint8_t>(rng());
  s.scale.resize(static_cast<size_t>(rows * cols / 32));
  for (uint8_t& c : s.scale) c = static_cast<uint8_t>(122 + rng() % 6);
  s.w.format = WeightFormat::kFp4;
  s.w.data = s.data.data();
  s.w.scale = s.scale.data();
  s.w.rows = s.w.total_rows = rows;
  s.w.cols = cols;
  return s;
}

inline Stored make_bf16(int64_t rows, int64_t cols, std::mt19937& rng) {
  Stored s;
  s.data.resize(static_cast<size_t>(rows * cols * 2));
  std::normal_distribution<float> nd(0.0f, 0.1f);
  for (int64_t i = 0; i < rows * cols; ++i) {
    const uint16_t b = f32_to_bf16(nd(rng));
    std::memcpy(s.data.data() + 2 * i, &b, 2);
  }
  s.w.format = WeightFormat::kBf16;
  s.w.data = s.data.data();
  s.w.rows = s.w.total_rows = rows;
  s.w.cols = cols;
  return s;
}

// Activations with a spread of block amaxes (so that act_quant scales differ per block),
// optionally rounded to BF16 as the reference holds them.
inline std::vector<float> make_x(int64_t n, int64_t ld, int64_t cols, std::mt19937& rng, bool bf16) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n * ld), 12345.0f);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t c = 0; c < cols; ++c) {
      float v = nd(rng) * std::exp2(static_cast<float>((c / 64 + t) % 5) - 2.0f);
      x[static_cast<size_t>(t * ld + c)] = bf16 ? round_bf16(v) : v;
    }
  }
  return x;
}

inline Stored make_f32(int64_t rows, int64_t cols, std::mt19937& rng) {
  Stored s;
  std::vector<float> v(static_cast<size_t>(rows * cols));
  std::normal_distribution<float> nd(0.0f, 0.1f);
  for (float& f : v) f = nd(rng);
  s.data.resize(v.size() * 4);
  std::memcpy(s.data.data(), v.data(), s.data.size());
  s.w.format = WeightFormat::kF32;
  s.w.data = s.data.data();
  s.w.rows = s.w.total_rows = rows;
  s.w.cols = cols;
  return s;
}


// The dequantizable ggml types (GGUF weights) the kernels take.
inline std::vector<GgmlType> ggml_weight_types() {
  return {GgmlType::F32,   GgmlType::F16,    GgmlType::BF16,    GgmlType::Q8_0,   GgmlType::Q4_0,    GgmlType::Q4_1,
          GgmlType::Q5_0,  GgmlType::Q5_1,   GgmlType::Q2_K,    GgmlType::Q3_K,   GgmlType::Q4_K,    GgmlType::Q5_K,
          GgmlType::Q6_K,  GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ2_S,  GgmlType::IQ3_XXS, GgmlType::IQ3_S,
          GgmlType::IQ4_NL, GgmlType::IQ4_XS, GgmlType::MXFP4};
}

// Random ggml blocks: random bytes with finite F16 scale fields (d, dmin / m) of mixed
// magnitudes (MXFP4: E8M0 codes near 2^-7); float types hold random normal values. `wild`
// leaves the scale fields random too (any F16 / E8M0 code, Inf and NaN included).
inline std::vector<uint8_t> make_ggml_blocks(GgmlType type, int64_t n, std::mt19937& rng, bool wild = false) {
  const auto info = *ggml_type_info(static_cast<uint32_t>(type));
  std::vector<uint8_t> data(static_cast<size_t>(ggml_row_bytes(type, n)));
  for (uint8_t& b : data) b = static_cast<uint8_t>(rng());
  const size_t bb = static_cast<size_t>(info.block_bytes);
  std::normal_distribution<float> nd(0.0f, 0.1f);
  if (info.block == 1) {
    if (wild) return data;
    for (size_t i = 0; i < data.size(); i += bb) {
      const float v = nd(rng);
      if (type == GgmlType::F32) std::memcpy(&data[i], &v, 4);
      const uint16_t h = type == GgmlType::F16 ? f32_to_f16(v) : f32_to_bf16(v);
      if (type != GgmlType::F32) std::memcpy(&data[i], &h, 2);
    }
    return data;
  }
  if (wild) return data;
  std::vector<int> offsets = {0};
  switch (type) {
    case GgmlType::Q4_1: case GgmlType::Q5_1: case GgmlType::Q4_K: case GgmlType::Q5_K: offsets = {0, 2}; break;
    case GgmlType::Q2_K: offsets = {80, 82}; break;
    case GgmlType::Q3_K: offsets = {108}; break;
    case GgmlType::Q6_K: offsets = {208}; break;
    default: break;
  }
  for (size_t i = 0; i < data.size(); i += bb) {
    if (type == GgmlType::MXFP4) {
      data[i] = static_cast<uint8_t>(118 + rng() % 6);
      continue;
    }
    for (int o : offsets) {
      const uint16_t h = f32_to_f16(std::ldexp(1.0f + static_cast<float>(rng() % 1024) / 1024.0f, -12 + static_cast<int>(rng() % 6)));
      std::memcpy(&data[i + static_cast<size_t>(o)], &h, 2);
    }
  }
  return data;
}

// A GGUF weight [rows, cols] of `type` standing for `role`.
inline Stored make_ggml(GgmlType type, WeightFormat role, int64_t rows, int64_t cols, std::mt19937& rng) {
  Stored s;
  s.data = make_ggml_blocks(type, rows * cols, rng);
  s.w.format = WeightFormat::kGgml;
  s.w.ggml_type = type;
  s.w.ggml_role = role;
  s.w.data = s.data.data();
  s.w.rows = s.w.total_rows = rows;
  s.w.cols = cols;
  return s;
}

}  // namespace dsv4
