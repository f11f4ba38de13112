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

}  // namespace dsv4
