// `dsv4 convert`: an official-layout checkpoint (safetensors) -> a deepseek4 GGUF file in
// llama.cpp's layout (../shared/spec/gguf-deepseek4.md), plus an MTP sidecar. FP8 dense weights
// are dequantized exactly and stored in the chosen type, FP4 routed experts are repacked
// bit-exactly into MXFP4 and stacked, 1-D tensors are F32, tid2eid I32. Written atomically
// (temp file + rename), then read back and checked tensor by tensor.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "ops/ggml_types.h"

namespace dsv4 {

struct ModelWeights;

// The tokenizer as GGUF stores it (tokenizer.ggml.*).
struct GgufVocab {
  std::vector<std::string> tokens;
  std::vector<int64_t> types;  // llama.cpp token types
  std::vector<std::string> merges;
  std::string pre = "deepseek-v3";
};

struct GgufConvertOptions {
  GgmlType dense_type = GgmlType::BF16;   // --type: 2-D non-expert matrices
  GgmlType expert_type = GgmlType::MXFP4; // --expert-type: routed experts
  // --tensor-type PATTERN=TYPE: the first pattern found (regex search) in a GGUF tensor name
  // decides its type (overrides the two above; 1-D tensors and tid2eid are never changed).
  std::vector<std::pair<std::string, GgmlType>> overrides;
  std::string mtp_out;  // sidecar path ("" = none); only if the model has an MTP block
};

struct GgufConvertReport {
  int64_t tensors = 0, bytes = 0, mtp_tensors = 0, mtp_bytes = 0;
};

// Parses a type name ("bf16", "q8_0", "mxfp4", ...); throws Error for unknown names.
GgmlType parse_ggml_type(const std::string& name);

// Writes `out` (and options.mtp_out). progress(done_bytes, total_bytes) now and then.
GgufConvertReport convert_to_gguf(const ModelWeights& w, const GgufVocab& vocab, const std::string& out,
                                  const GgufConvertOptions& options,
                                  const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace dsv4
