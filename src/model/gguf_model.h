// A `deepseek4` GGUF file (../shared/spec/gguf-deepseek4.md) as a V4 model: the config from the
// deepseek4.* keys, and the GGUF tensors bound to the official tensor names (ggml-typed views
// into the mapped file for the matrices, stacked experts sliced per expert; small tensors such
// as norms, mHC parameters, ape and tid2eid converted exactly to the official dtype and layout).
#pragma once
#include <memory>
#include <string>

#include "model/config.h"
#include "model/gguf.h"

namespace dsv4 {

struct ModelWeights;

// The model config of a deepseek4 GGUF (n_mtp_layers = 0: MTP comes from a sidecar).
ModelConfig gguf_model_config(const GgufFile& file);

// The official tensor name -> GGUF tensor name (and for a routed expert the expert index;
// -1 otherwise); "" for names that have no GGUF tensor (the FP8 / FP4 .scale tensors).
std::string gguf_tensor_name(const std::string& official, int64_t* expert);

// Loads FILE.gguf (split sets given by their first part). `mtp_path`: an optional sidecar
// GGUF with the MTP block (mtp.0.* names, see gguf_tensor_name). Throws Error naming the file
// and the tensor / key for a missing, misshaped, unsupported-type or extra tensor.
std::shared_ptr<const ModelWeights> load_gguf_model(const std::string& path, const std::string& mtp_path = "",
                                                    FileMemory memory = FileMemory::kMapped);

}  // namespace dsv4
