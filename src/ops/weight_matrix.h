// A stored weight matrix W[rows, cols] (nn.Linear layout: y = W x) in its stored format,
// used in place from the mapped file. A row slice (`row_begin`, `rows`) keeps pointing at the
// tensor's start so that block scales are indexed by absolute row.
#pragma once
#include <cstdint>

#include "ops/ggml_types.h"

namespace dsv4 {

enum class WeightFormat : uint8_t {
  kF32,
  kBf16,
  kFp8Block,  // F8_E4M3 codes, F8_E8M0 scale per `block` x `block` tile: scale[r/block, c/block]
  kFp4,       // two E2M1 codes per byte (low nibble = even column), F8_E8M0 scale[r, c/32]
  kGgml,      // ggml blocks of `ggml_type` along each row (GGUF files); no separate scale tensor
};

struct WeightMatrix {
  WeightFormat format = WeightFormat::kF32;
  const uint8_t* data = nullptr;   // start of the whole stored tensor
  const uint8_t* scale = nullptr;  // start of the whole scale tensor (FP8 / FP4), else null
  int64_t rows = 0;                // logical rows in this view
  int64_t cols = 0;                // logical columns (FP4: twice the stored bytes per row)
  int64_t row_begin = 0;           // first stored row of this view
  int64_t total_rows = 0;          // rows of the whole stored tensor
  int64_t block = 128;             // FP8 tile size
  // kGgml: the row encoding, and the official format this weight stands for, which decides the
  // reference-mode activation rounding (kFp8Block / kFp4: act_quant and K blocks of 128 / 32;
  // kBf16: BF16 inputs and output; kF32: FP32).
  GgmlType ggml_type = GgmlType::F32;
  WeightFormat ggml_role = WeightFormat::kF32;

  WeightMatrix row_slice(int64_t first, int64_t count) const {
    WeightMatrix s = *this;
    s.row_begin = row_begin + first;
    s.rows = count;
    return s;
  }
};

// Exact dequantisation of view rows [r0, r0+n) into out[n, cols] (FP32).
void dequantize_rows(const WeightMatrix& w, int64_t r0, int64_t n, float* out);

}  // namespace dsv4
