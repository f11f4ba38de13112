#include "engine/model_files.h"

#include <map>

#include <nlohmann/json.hpp>

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

GgufVocab gguf_vocab_from_tokenizer_json(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": invalid JSON (" + e.what() + ")");
  }
  try {
    std::map<int64_t, std::pair<std::string, int64_t>> by_id;  // id -> (token, type)
    for (const auto& [tok, id] : j.at("model").at("vocab").items()) by_id[id.get<int64_t>()] = {tok, 1};
    if (j.contains("added_tokens") && j["added_tokens"].is_array())
      for (const auto& a : j["added_tokens"]) by_id[a.at("id").get<int64_t>()] = {a.at("content").get<std::string>(), a.value("special", false) ? 3 : 4};
    if (by_id.empty() || by_id.begin()->first < 0) throw Error(path + ": empty vocabulary or negative id");
    GgufVocab v;
    const int64_t n = by_id.rbegin()->first + 1;
    for (int64_t id = 0; id < n; ++id) {
      auto it = by_id.find(id);
      v.tokens.push_back(it != by_id.end() ? it->second.first : "[PAD" + std::to_string(id) + "]");
      v.types.push_back(it != by_id.end() ? it->second.second : 5);
    }
    for (const auto& m : j.at("model").at("merges"))
      v.merges.push_back(m.is_string() ? m.get<std::string>() : m.at(0).get<std::string>() + " " + m.at(1).get<std::string>());
    return v;
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": not a BPE tokenizer.json (" + e.what() + ")");
  }
}

}  // namespace dsv4
