// Where a model's files are: a model directory (config.json, *.safetensors, tokenizer.json) or a
// deepseek4 GGUF file (weights, config and tokenizer in one file or split set).
#pragma once
#include <string>

#include "model/gguf_convert.h"
#include "text/tokenizer.h"

namespace dsv4 {

// The tokenizer of the model at `model_path`: DIR/tokenizer.json, or the GGUF's
// tokenizer.ggml.* keys (gpt2 BPE with the deepseek-v3 pre-tokenizer). Throws Error naming the
// file and key when missing or unsupported.
Tokenizer load_model_tokenizer(const std::string& model_path);

// What load_model_tokenizer reads (for messages): the tokenizer.json path or the GGUF file.
std::string model_tokenizer_source(const std::string& model_path);

// The GGUF vocabulary of a tokenizer.json, as llama.cpp's converter writes it: every id's token
// ([PAD<id>] / unused for holes), control type for special added tokens, user-defined for the
// other added tokens, normal otherwise; merges as "left right".
GgufVocab gguf_vocab_from_tokenizer_json(const std::string& path);

}  // namespace dsv4
