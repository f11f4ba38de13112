#include "ops/weight_matrix.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "base/error.h"
#include "ops/format_tables.h"
#include "ops/formats.h"

namespace dsv4 {

void dequantize_rows(const WeightMatrix& w, int64_t r0, int64_t n, float* out) {
  if (r0 < 0 || n < 0 || r0 + n > w.rows) {
    throw Error("dequantize_rows: rows [" + std::to_string(r0) + ", " + std::to_string(r0 + n) +
                ") outside a view of " + std::to_string(w.rows) + " rows");
  }
  const bool quantised = w.format == WeightFormat::kFp8Block || w.format == WeightFormat::kFp4;
  if (w.data == nullptr || (quantised && (w.scale == nullptr || w.block <= 0))) {
    throw Error("dequantize_rows: weight view without data or block scales");
  }
  if (w.format == WeightFormat::kFp4 && w.cols % 32 != 0) {
    throw Error("dequantize_rows: FP4 weight with " + std::to_string(w.cols) + " columns (not a multiple of 32)");
  }
  const int64_t cols = w.cols;
  for (int64_t i = 0; i < n; ++i) {
    // Scales are indexed by the row of the whole stored tensor, not of the view.
    const int64_t row = w.row_begin + r0 + i;
    float* dst = out + i * cols;
    switch (w.format) {
      case WeightFormat::kF32:
        std::memcpy(dst, w.data + row * cols * 4, static_cast<size_t>(cols) * 4);  // may be unaligned
        break;
      case WeightFormat::kBf16: {
        const uint8_t* src = w.data + row * cols * 2;
        for (int64_t c = 0; c < cols; ++c) {
          uint16_t bits;
          std::memcpy(&bits, src + 2 * c, 2);
          dst[c] = bf16_to_f32(bits);
        }
        break;
      }
      case WeightFormat::kFp8Block: {
        // W[o, i] = e4m3(code) * 2^(S[o / block, i / block] - 127); S has ceil(cols / block)
        // entries per block row (cols need not be a multiple of the block).
        const int64_t block = w.block;
        const int64_t scale_cols = (cols + block - 1) / block;
        const uint8_t* codes = w.data + row * cols;
        const uint8_t* scales = w.scale + (row / block) * scale_cols;
        for (int64_t cb = 0; cb < scale_cols; ++cb) {
          const float s = e8m0_to_f32(scales[cb]);
          const int64_t end = std::min(cols, (cb + 1) * block);
          for (int64_t c = cb * block; c < end; ++c) dst[c] = format_tables::kE4m3[codes[c]] * s;
        }
        break;
      }
      case WeightFormat::kFp4: {
        // Two E2M1 codes per byte along the row (low nibble = even column); one E8M0 scale
        // per row and 32 consecutive columns.
        const uint8_t* packed = w.data + row * (cols / 2);
        const uint8_t* scales = w.scale + row * (cols / 32);
        for (int64_t c = 0; c < cols; c += 2) {
          const float s = e8m0_to_f32(scales[c / 32]);
          const uint8_t byte = packed[c / 2];
          dst[c] = format_tables::kE2m1[byte & 0xF] * s;
          dst[c + 1] = format_tables::kE2m1[byte >> 4] * s;
        }
        break;
      }
      case WeightFormat::kGgml:
        dequantize_ggml(w.ggml_type, w.data + row * ggml_row_bytes(w.ggml_type, cols), cols, dst);
        break;
    }
  }
}

}  // namespace dsv4
