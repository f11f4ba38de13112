#include "engine/model_files.h"

#include "base/error.h"
#include "base/file.h"
#include "model/gguf.h"

namespace dsv4 {

std::string model_tokenizer_source(const std::string& model_path) {
  return is_gguf_path(model_path) ? model_path : model_path + "/tokenizer.json";
}

Tokenizer load_model_tokenizer(const std::string& model_path) {
  if (!is_gguf_path(model_path)) {
    const std::string path = model_path + "/tokenizer.json";
    if (!file_exists(path)) throw Error(path + ": missing (the model directory needs the tokenizer to chat)");
    return Tokenizer::load(path);
  }
  const GgufFile f = GgufFile::open(model_path);
  const std::string model = f.get_string("tokenizer.ggml.model");
  if (model != "gpt2")
    throw Error(model_path + ": metadata key 'tokenizer.ggml.model' is '" + model + "', only gpt2 (byte-level BPE) is supported");
  const std::string pre = f.get_string("tokenizer.ggml.pre", "deepseek-v3");
  std::vector<int64_t> types;
  if (f.has("tokenizer.ggml.token_type")) types = f.get_int_array("tokenizer.ggml.token_type");
  return Tokenizer::from_parts(f.get_string_array("tokenizer.ggml.tokens"), types, f.get_string_array("tokenizer.ggml.merges"), pre,
                               model_path);
}

}  // namespace dsv4
