// SIMD decoders of the ggml weight types (Highway, runtime dispatch over the same targets as
// ops/linear_kernels.cc, so force_target there selects these too). Each gives exactly the
// values of dequantize_ggml (ops/ggml_types.h), bit for bit: the same FP32 operations in the
// same order, no fused multiply-adds (this file is compiled with -ffp-contract=off), the
// integer unpacking done in vector lanes or by small tables. linear() decodes GGUF weight rows
// with them chunk by chunk into a cache-resident buffer and multiplies every token there
// (ops/linear_kernels.h).
#pragma once
#include <cstdint>

#include "ops/ggml_types.h"

namespace dsv4::ggml_kernels {

// Whether `type` has a SIMD decoder (the others fall back to dequantize_ggml; both exact).
bool has_simd_decoder(GgmlType type);

// Decodes elements [e0, e1) of one row of `type` (row: the row's first block; e0 and e1 on
// block boundaries) into out[0, e1 - e0). Throws Error for types dequantize_ggml rejects.
void decode(GgmlType type, const uint8_t* row, int64_t e0, int64_t e1, float* out);

}  // namespace dsv4::ggml_kernels
