// The tokenizer of a GGUF file (tokenizer.ggml.*, written the way llama.cpp's converter writes
// the release's tokenizer.json: every id's token, CONTROL for special added tokens,
// USER_DEFINED for the other added tokens, the merges, pre-tokenizer deepseek-v3) encodes every
// case of tests/data/tokenizer/cases.jsonl exactly like the tokenizer.json it came from.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/file.h"
#include "engine/model_files.h"
#include "model/gguf.h"

using namespace dsv4;
using nlohmann::json;

namespace {

const std::string kTokenizer = std::string(DSV4_ASSETS_DIR) + "/deepseek-v4-tokenizer.json.gz";

std::string gunzip_file(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw Error("cannot open " + path);
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  gzclose(f);
  return out;
}

struct Parts {
  std::vector<std::string> tokens, merges;
  std::vector<int64_t> types;
};

// tokenizer.json -> the GGUF vocabulary, as llama.cpp's converter builds it.
Parts parts_from_json() {
  const json j = json::parse(gunzip_file(kTokenizer));
  std::map<int64_t, std::pair<std::string, int64_t>> by_id;  // id -> (text, type)
  for (const auto& [tok, id] : j["model"]["vocab"].items()) by_id[id.get<int64_t>()] = {tok, 1};
  for (const auto& a : j["added_tokens"]) by_id[a["id"].get<int64_t>()] = {a["content"].get<std::string>(), a["special"].get<bool>() ? 3 : 4};
  Parts p;
  const int64_t n = by_id.rbegin()->first + 1;
  for (int64_t id = 0; id < n; ++id) {
    auto it = by_id.find(id);
    p.tokens.push_back(it != by_id.end() ? it->second.first : "[PAD" + std::to_string(id) + "]");
    p.types.push_back(it != by_id.end() ? it->second.second : 5);
  }
  for (const auto& m : j["model"]["merges"])
    p.merges.push_back(m.is_string() ? m.get<std::string>() : m[0].get<std::string>() + " " + m[1].get<std::string>());
  return p;
}

std::string write_gguf(const Parts& p, const std::string& model, const std::string& pre) {
  std::vector<std::pair<std::string, GgufValue>> kv = {
      {"general.architecture", gguf_str("deepseek4")},
      {"tokenizer.ggml.model", gguf_str(model)},
      {"tokenizer.ggml.pre", gguf_str(pre)},
      {"tokenizer.ggml.tokens", gguf_str_array(p.tokens)},
      {"tokenizer.ggml.token_type", gguf_i32_array(p.types)},
      {"tokenizer.ggml.merges", gguf_str_array(p.merges)},
  };
  const std::string path = ::testing::TempDir() + "/dsv4_tok_" + std::to_string(::getpid()) + "_" + model + "_" + pre + ".gguf";
  const std::string bytes = serialize_gguf(kv, {});
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

TEST(GgufTokenizer, EncodesLikeTokenizerJson) {
  const Parts p = parts_from_json();
  const std::string path = write_gguf(p, "gpt2", "deepseek-v3");
  const Tokenizer g = load_model_tokenizer(path);
  const Tokenizer t = Tokenizer::load(kTokenizer);
  std::remove(path.c_str());
  EXPECT_EQ(g.vocab_size(), t.vocab_size());
  std::ifstream in(std::string(DSV4_TEST_DATA_DIR) + "/tokenizer/cases.jsonl");
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    const json c = json::parse(line);
    if (c.value("kind", "") != "encode") continue;
    const std::string text = c["text"];
    const bool ps = c.value("parse_special", true);
    const auto ids = g.encode(text, ps);
    EXPECT_EQ(ids, t.encode(text, ps)) << c["id"];
    EXPECT_EQ(std::vector<int64_t>(ids.begin(), ids.end()), c["ids"].get<std::vector<int64_t>>()) << c["id"];
    EXPECT_EQ(g.decode(ids), t.decode(ids)) << c["id"];
    ++n;
  }
  EXPECT_GT(n, 100);
  // The chat template's special tokens are single ids.
  for (const char* s : {"<｜begin▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "</think>"})
    EXPECT_EQ(g.encode(s), t.encode(s)) << s;
}

TEST(GgufTokenizer, UnsupportedModelOrPreTokenizerIsAnError) {
  Parts p;
  p.tokens = {"a"};
  p.types = {1};
  const std::string a = write_gguf(p, "llama", "deepseek-v3"), b = write_gguf(p, "gpt2", "llama3");
  auto err = [](const std::string& path) {
    try {
      load_model_tokenizer(path);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(err(a).find("'tokenizer.ggml.model' is 'llama'"), std::string::npos);
  EXPECT_NE(err(b).find("pre-tokenizer 'llama3' is not supported"), std::string::npos);
  std::remove(a.c_str());
  std::remove(b.c_str());
}

}  // namespace
