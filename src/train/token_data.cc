#include "train/token_data.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "model/state_io.h"

namespace dsv4::train {

namespace fs = std::filesystem;

int64_t TokenData::train_tokens() const {
  int64_t n = 0;
  for (const Shard& s : train) n += s.tokens;
  return n;
}
int64_t TokenData::val_tokens() const {
  int64_t n = 0;
  for (const Shard& s : val) n += s.tokens;
  return n;
}

namespace {

std::vector<Shard> open_split(const std::string& dir, const nlohmann::json& list, const std::string& split,
                              int64_t vocab, const std::string& manifest) {
  std::vector<Shard> out;
  if (!list.is_array()) throw Error(manifest + ": field " + split + " must be an array");
  for (size_t i = 0; i < list.size(); ++i) {
    const nlohmann::json& e = list[i];
    const std::string where = manifest + ": " + split + "[" + std::to_string(i) + "]";
    if (!e.is_object() || !e.contains("file") || !e["file"].is_string() || !e.contains("tokens") ||
        !e["tokens"].is_number_integer() || !e.contains("crc32") || !e["crc32"].is_number_unsigned())
      throw Error(where + ": needs file (string), tokens (integer), crc32 (unsigned)");
    const std::string name = e["file"].get<std::string>();
    if (name.find('/') != std::string::npos || name == ".." || name.empty())
      throw Error(where + ": file must be a plain name inside the data directory");
    Shard s;
    s.path = (fs::path(dir) / name).string();
    s.tokens = e["tokens"].get<int64_t>();
    if (s.tokens < 0) throw Error(where + ": negative token count");
    s.map = std::make_unique<MappedFile>(s.path);
    if (static_cast<int64_t>(s.map->size()) != 4 * s.tokens)
      throw Error(s.path + ": " + std::to_string(s.map->size()) + " bytes, the manifest says " + std::to_string(s.tokens) +
                  " tokens (" + std::to_string(4 * s.tokens) + " bytes): truncated or corrupt shard");
    const uint32_t crc = crc32_bytes(s.map->data(), s.map->size());
    if (crc != e["crc32"].get<uint32_t>())
      throw Error(s.path + ": CRC-32 " + std::to_string(crc) + " does not match the manifest's " +
                  std::to_string(e["crc32"].get<uint32_t>()) + ": corrupt shard");
    const uint8_t* p = s.map->data();
    for (int64_t t = 0; t < s.tokens; ++t) {
      uint32_t v;
      std::memcpy(&v, p + 4 * t, 4);
      if (static_cast<int64_t>(v) >= vocab)
        throw Error(s.path + ": token " + std::to_string(t) + " has id " + std::to_string(v) + ", outside the vocabulary [0, " +
                    std::to_string(vocab) + ")");
    }
    out.push_back(std::move(s));
  }
  return out;
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

void copy_tokens(const Shard& s, int64_t start, int64_t len, int64_t* out) {
  const uint8_t* p = s.map->data() + 4 * start;
  for (int64_t i = 0; i < len; ++i) {
    uint32_t v;
    std::memcpy(&v, p + 4 * i, 4);
    out[i] = v;
  }
}

}  // namespace

TokenData open_token_data(const std::string& dir, int64_t model_vocab) {
  const std::string manifest = (fs::path(dir) / "manifest.json").string();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(manifest));
  } catch (const nlohmann::json::exception& e) {
    throw Error(manifest + ": invalid JSON: " + e.what());
  }
  if (!j.is_object() || j.value("format", "") != "dsv4-tokens")
    throw Error(manifest + ": not a dsv4 token data manifest (format must be \"dsv4-tokens\")");
  if (j.value("version", 0) != 1) throw Error(manifest + ": unsupported version (expected 1)");
  TokenData d;
  d.dir = dir;
  if (!j.contains("vocab_size") || !j["vocab_size"].is_number_integer()) throw Error(manifest + ": missing vocab_size");
  d.vocab_size = j["vocab_size"].get<int64_t>();
  d.eos_token_id = j.value("eos_token_id", int64_t{1});
  if (model_vocab > 0 && d.vocab_size > model_vocab)
    throw Error(manifest + ": vocab_size " + std::to_string(d.vocab_size) + " exceeds the model's " +
                std::to_string(model_vocab));
  d.train = open_split(dir, j.value("train", nlohmann::json::array()), "train", d.vocab_size, manifest);
  d.val = open_split(dir, j.value("val", nlohmann::json::array()), "val", d.vocab_size, manifest);
  return d;
}

void write_token_data(const std::string& dir, const std::vector<std::vector<int64_t>>& docs, int64_t vocab_size,
                      int64_t eos_token_id, double val_fraction, int64_t shard_tokens) {
  fs::create_directories(dir);
  size_t n_val = static_cast<size_t>(static_cast<double>(docs.size()) * val_fraction);
  if (val_fraction > 0 && n_val == 0 && docs.size() >= 2) n_val = 1;
  const size_t n_train = docs.size() - n_val;
  nlohmann::json j = {{"format", "dsv4-tokens"}, {"version", 1}, {"vocab_size", vocab_size}, {"eos_token_id", eos_token_id}};
  auto write_split = [&](const std::string& split, size_t d0, size_t d1) {
    nlohmann::json list = nlohmann::json::array();
    std::vector<uint32_t> buf;
    auto flush = [&] {
      if (buf.empty()) return;
      char name[64];
      std::snprintf(name, sizeof name, "%s-%05zu.u32", split.c_str(), list.size());
      const std::string bytes(reinterpret_cast<const char*>(buf.data()), buf.size() * 4);
      write_file_atomic((fs::path(dir) / name).string(), bytes);
      list.push_back({{"file", name}, {"tokens", buf.size()}, {"crc32", crc32_bytes(bytes.data(), bytes.size())}});
      buf.clear();
    };
    for (size_t d = d0; d < d1; ++d) {
      for (int64_t t : docs[d]) {
        if (t < 0 || t >= vocab_size) throw Error("token data: document " + std::to_string(d) + " holds id " + std::to_string(t) + " outside [0, " + std::to_string(vocab_size) + ")");
        buf.push_back(static_cast<uint32_t>(t));
      }
      buf.push_back(static_cast<uint32_t>(eos_token_id));
      if (static_cast<int64_t>(buf.size()) >= shard_tokens) flush();
    }
    flush();
    j[split] = list;
  };
  write_split("train", 0, n_train);
  write_split("val", n_train, docs.size());
  write_file_atomic((fs::path(dir) / "manifest.json").string(), j.dump(1) + "\n");
}

void train_window(const TokenData& d, uint64_t seed, int64_t step, int64_t row, int64_t len, int64_t* out) {
  int64_t total = 0;
  for (const Shard& s : d.train) total += std::max<int64_t>(0, s.tokens - len + 1);
  if (total == 0) throw Error(d.dir + ": no train shard holds a window of " + std::to_string(len) + " tokens");
  uint64_t h = splitmix64(seed ^ splitmix64(static_cast<uint64_t>(step) * 0x100000001B3ull + static_cast<uint64_t>(row)));
  int64_t k = static_cast<int64_t>(h % static_cast<uint64_t>(total));
  for (const Shard& s : d.train) {
    const int64_t n = std::max<int64_t>(0, s.tokens - len + 1);
    if (k < n) return copy_tokens(s, k, len, out);
    k -= n;
  }
}

void val_window(const TokenData& d, int64_t i, int64_t len, int64_t* out) {
  int64_t total = 0;
  for (const Shard& s : d.val) total += s.tokens / len;
  if (total == 0) throw Error(d.dir + ": no held-out shard holds a window of " + std::to_string(len) + " tokens");
  int64_t k = i % total;
  for (const Shard& s : d.val) {
    const int64_t n = s.tokens / len;
    if (k < n) return copy_tokens(s, k * len, len, out);
    k -= n;
  }
}

}  // namespace dsv4::train
