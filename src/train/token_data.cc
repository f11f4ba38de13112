#include "train/token_data.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/random.h"
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
                              int64_t vocab, const std::string& manifest, bool masked, std::vector<ExampleStart>* starts) {
  std::vector<Shard> out;
  if (!list.is_array()) throw Error(manifest + ": field " + split + " must be an array");
  for (size_t i = 0; i < list.size(); ++i) {
    const nlohmann::json& e = list[i];
    const std::string where = manifest + ": " + split + "[" + std::to_string(i) + "]";
    if (!e.is_object() || !e.contains("file") || !e["file"].is_string() || !e.contains("tokens") ||
        !e["tokens"].is_number_integer() || !e.contains("crc32") || !e["crc32"].is_number_unsigned())
      throw Error(where + ": needs file (string), tokens (integer), crc32 (unsigned)");
    const std::string name = e["file"].get<std::string>();
    auto plain = [&](const std::string& n) {
      if (n.find('/') != std::string::npos || n == ".." || n.empty())
        throw Error(where + ": file " + n + " must be a plain name inside the data directory");
    };
    plain(name);
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
    if (masked) {
      if (!e.contains("mask") || !e["mask"].is_string() || !e.contains("mask_crc32") || !e["mask_crc32"].is_number_unsigned())
        throw Error(where + ": version 2 needs mask (string) and mask_crc32 (unsigned)");
      const std::string mname = e["mask"].get<std::string>();
      plain(mname);
      const std::string mpath = (fs::path(dir) / mname).string();
      s.mask_map = std::make_unique<MappedFile>(mpath);
      if (static_cast<int64_t>(s.mask_map->size()) != s.tokens)
        throw Error(mpath + ": " + std::to_string(s.mask_map->size()) + " bytes for " + std::to_string(s.tokens) +
                    " tokens: truncated or corrupt mask");
      const uint32_t mcrc = crc32_bytes(s.mask_map->data(), s.mask_map->size());
      if (mcrc != e["mask_crc32"].get<uint32_t>())
        throw Error(mpath + ": CRC-32 " + std::to_string(mcrc) + " does not match the manifest's " +
                    std::to_string(e["mask_crc32"].get<uint32_t>()) + ": corrupt mask");
      const uint8_t* m = s.mask_map->data();
      for (int64_t t = 0; t < s.tokens; ++t) {
        if (m[t] & ~(kLossBit | kStartBit))
          throw Error(mpath + ": byte " + std::to_string(t) + " = " + std::to_string(m[t]) + " has unknown bits");
        if (m[t] & kStartBit) starts->push_back(ExampleStart{static_cast<int32_t>(out.size()), t});
      }
      if (s.tokens > 0 && !(m[0] & kStartBit)) throw Error(mpath + ": the shard does not start with an example");
    }
    out.push_back(std::move(s));
  }
  return out;
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
  const int version = j.contains("version") && j["version"].is_number_integer() ? j["version"].get<int>() : 0;
  if (version != 1 && version != 2) throw Error(manifest + ": unsupported version (expected 1 or 2)");
  TokenData d;
  d.masked = version == 2;
  d.dir = dir;
  if (!j.contains("vocab_size") || !j["vocab_size"].is_number_integer()) throw Error(manifest + ": missing vocab_size");
  d.vocab_size = j["vocab_size"].get<int64_t>();
  d.eos_token_id = j.value("eos_token_id", int64_t{1});
  if (model_vocab > 0 && d.vocab_size > model_vocab)
    throw Error(manifest + ": vocab_size " + std::to_string(d.vocab_size) + " exceeds the model's " +
                std::to_string(model_vocab));
  d.train = open_split(dir, j.value("train", nlohmann::json::array()), "train", d.vocab_size, manifest, d.masked, &d.train_examples);
  d.val = open_split(dir, j.value("val", nlohmann::json::array()), "val", d.vocab_size, manifest, d.masked, &d.val_examples);
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

void write_example_data(const std::string& dir, const std::vector<Example>& examples, int64_t vocab_size,
                        int64_t eos_token_id, double val_fraction, int64_t shard_tokens) {
  size_t n_val = static_cast<size_t>(static_cast<double>(examples.size()) * val_fraction);
  if (val_fraction > 0 && n_val == 0 && examples.size() >= 2) n_val = 1;
  write_example_data_split(dir, examples, vocab_size, eos_token_id, n_val, shard_tokens);
}

void write_example_data_split(const std::string& dir, const std::vector<Example>& examples, int64_t vocab_size,
                              int64_t eos_token_id, size_t n_val, int64_t shard_tokens) {
  fs::create_directories(dir);
  if (n_val > examples.size()) throw Error("example data: " + std::to_string(n_val) + " held-out examples of " + std::to_string(examples.size()));
  const size_t n_train = examples.size() - n_val;
  nlohmann::json j = {{"format", "dsv4-tokens"}, {"version", 2}, {"vocab_size", vocab_size}, {"eos_token_id", eos_token_id}};
  auto write_split = [&](const std::string& split, size_t e0, size_t e1) {
    nlohmann::json list = nlohmann::json::array();
    std::vector<uint32_t> buf;
    std::string mask;
    auto flush = [&] {
      if (buf.empty()) return;
      char name[64], mname[64];
      std::snprintf(name, sizeof name, "%s-%05zu.u32", split.c_str(), list.size());
      std::snprintf(mname, sizeof mname, "%s-%05zu.mask", split.c_str(), list.size());
      const std::string bytes(reinterpret_cast<const char*>(buf.data()), buf.size() * 4);
      write_file_atomic((fs::path(dir) / name).string(), bytes);
      write_file_atomic((fs::path(dir) / mname).string(), mask);
      list.push_back({{"file", name}, {"tokens", buf.size()}, {"crc32", crc32_bytes(bytes.data(), bytes.size())},
                      {"mask", mname}, {"mask_crc32", crc32_bytes(mask.data(), mask.size())}});
      buf.clear();
      mask.clear();
    };
    for (size_t e = e0; e < e1; ++e) {
      const Example& ex = examples[e];
      if (ex.tokens.empty()) throw Error("example data: example " + std::to_string(e) + " is empty");
      if (ex.loss.size() != ex.tokens.size())
        throw Error("example data: example " + std::to_string(e) + " has " + std::to_string(ex.loss.size()) + " mask entries for " +
                    std::to_string(ex.tokens.size()) + " tokens");
      if (!buf.empty() && static_cast<int64_t>(buf.size() + ex.tokens.size()) > shard_tokens) flush();
      for (size_t t = 0; t < ex.tokens.size(); ++t) {
        const int64_t id = ex.tokens[t];
        if (id < 0 || id >= vocab_size)
          throw Error("example data: example " + std::to_string(e) + " holds id " + std::to_string(id) + " outside [0, " + std::to_string(vocab_size) + ")");
        buf.push_back(static_cast<uint32_t>(id));
        mask.push_back(static_cast<char>((ex.loss[t] ? kLossBit : 0) | (t == 0 ? kStartBit : 0)));
      }
    }
    flush();
    j[split] = list;
  };
  write_split("train", 0, n_train);
  write_split("val", n_train, examples.size());
  write_file_atomic((fs::path(dir) / "manifest.json").string(), j.dump(1) + "\n");
}

namespace {

// Packs whole examples from starts[k] on (see train_example_row).
void pack_examples(const TokenData& d, const std::vector<Shard>& shards, const std::vector<ExampleStart>& starts, size_t k,
                   int64_t len, int64_t* tokens, uint8_t* loss) {
  auto end_of = [&](size_t e) {
    if (e + 1 < starts.size() && starts[e + 1].shard == starts[e].shard) return starts[e + 1].offset;
    return shards[static_cast<size_t>(starts[e].shard)].tokens;
  };
  int64_t n = 0;
  for (size_t e = k; e < starts.size() && n < len; ++e) {
    const int64_t size = end_of(e) - starts[e].offset;
    if (n > 0 && n + size > len) break;
    const int64_t take = std::min(size, len - n);
    const Shard& s = shards[static_cast<size_t>(starts[e].shard)];
    copy_tokens(s, starts[e].offset, take, tokens + n);
    for (int64_t i = 0; i < take; ++i) loss[n + i] = s.mask()[starts[e].offset + i] & kLossBit;
    n += take;
  }
  for (; n < len; ++n) {
    tokens[n] = d.eos_token_id;
    loss[n] = 0;
  }
}

}  // namespace

void train_example_row(const TokenData& d, uint64_t seed, int64_t step, int64_t row, int64_t len, int64_t* tokens,
                       uint8_t* loss) {
  if (!d.masked) throw Error(d.dir + ": not example data (manifest version 2 with masks)");
  if (d.train_examples.empty()) throw Error(d.dir + ": no train examples");
  const uint64_t h = mix64(seed ^ mix64(static_cast<uint64_t>(step) * 0x100000001B3ull + static_cast<uint64_t>(row)));
  pack_examples(d, d.train, d.train_examples, static_cast<size_t>(h % d.train_examples.size()), len, tokens, loss);
}

void val_example_row(const TokenData& d, int64_t i, int64_t len, int64_t* tokens, uint8_t* loss) {
  if (!d.masked) throw Error(d.dir + ": not example data (manifest version 2 with masks)");
  if (d.val_examples.empty()) throw Error(d.dir + ": no held-out examples");
  pack_examples(d, d.val, d.val_examples, static_cast<size_t>(i) % d.val_examples.size(), len, tokens, loss);
}

void train_window(const TokenData& d, uint64_t seed, int64_t step, int64_t row, int64_t len, int64_t* out) {
  int64_t total = 0;
  for (const Shard& s : d.train) total += std::max<int64_t>(0, s.tokens - len + 1);
  if (total == 0) throw Error(d.dir + ": no train shard holds a window of " + std::to_string(len) + " tokens");
  uint64_t h = mix64(seed ^ mix64(static_cast<uint64_t>(step) * 0x100000001B3ull + static_cast<uint64_t>(row)));
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
