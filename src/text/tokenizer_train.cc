// BPE training (see tokenizer_train.h).
#include "text/tokenizer_train.h"

#include <algorithm>
#include <queue>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/file.h"
#include "text/tokenizer_internal.h"

namespace dsv4 {
namespace {

using nlohmann::json;

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The template without model.vocab / model.merges in the DOM (the release's 128k entries are
// not needed), but with the set of model.vocab strings (to know which added tokens are in it).
struct Template {
  json root;
  std::unordered_set<std::string> vocab;
};

Template parse_template(const std::string& path, const std::string& text) {
  Template t;
  std::string top_key, model_key;
  auto cb = [&](int depth, json::parse_event_t ev, json& parsed) -> bool {
    if (ev != json::parse_event_t::key) return true;
    const std::string& k = parsed.get_ref<const std::string&>();
    if (depth == 1) top_key = k;
    else if (depth == 2 && top_key == "model") model_key = k;
    if (top_key != "model") return true;
    if (depth == 2 && k == "merges") return false;
    if (depth == 3 && model_key == "vocab") {
      t.vocab.insert(k);
      return false;
    }
    return true;
  };
  try {
    t.root = json::parse(text, cb);
  } catch (const json::exception& e) {
    throw Error("tokenizer template " + path + ": invalid JSON: " + e.what());
  }
  if (!t.root.is_object() || !t.root.contains("model") || !t.root["model"].is_object())
    throw Error("tokenizer template " + path + ": no model object");
  if (!t.root.contains("added_tokens") || !t.root["added_tokens"].is_array())
    throw Error("tokenizer template " + path + ": no added_tokens list");
  return t;
}

// Symbols are internal ids: 0..255 the single bytes, 256.. merged tokens in merge order.
struct Pair {
  int32_t a, b;
};
uint64_t pack(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
Pair unpack(uint64_t k) { return {int32_t(k >> 32), int32_t(k & 0xffffffffu)}; }

struct Candidate {
  int64_t count;
  uint64_t pair;
};

struct Trainer {
  std::vector<std::string> bytes;  // bytes of each symbol
  std::vector<Pair> merges;
  std::vector<std::vector<int32_t>> words;
  std::vector<uint64_t> freq;
  std::unordered_map<uint64_t, int64_t> count;
  std::unordered_map<uint64_t, std::vector<uint32_t>> where;  // words that held the pair (may be stale)

  // Strict total order: higher count first, then smaller (left bytes, right bytes).
  bool worse(const Candidate& x, const Candidate& y) const {
    if (x.count != y.count) return x.count < y.count;
    Pair px = unpack(x.pair), py = unpack(y.pair);
    int c = bytes[size_t(px.a)].compare(bytes[size_t(py.a)]);
    if (c != 0) return c > 0;
    return bytes[size_t(px.b)].compare(bytes[size_t(py.b)]) > 0;
  }

  void add_pairs(uint32_t w, int64_t sign, std::vector<uint64_t>* touched) {
    const auto& s = words[w];
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      uint64_t p = pack(s[i], s[i + 1]);
      count[p] += sign * int64_t(freq[w]);
      if (sign > 0) {
        auto& list = where[p];
        if (list.empty() || list.back() != w) list.push_back(w);
        if (touched) touched->push_back(p);
      }
    }
  }

  // Learns up to `n_new` merges; `forbidden(bytes)` rejects a merged token.
  template <class Forbidden>
  void run(int32_t n_new, Forbidden&& forbidden) {
    std::unordered_set<std::string> existing(bytes.begin(), bytes.end());
    for (uint32_t w = 0; w < words.size(); ++w) add_pairs(w, +1, nullptr);
    auto cmp = [this](const Candidate& x, const Candidate& y) { return worse(x, y); };
    std::priority_queue<Candidate, std::vector<Candidate>, decltype(cmp)> heap(cmp);
    for (const auto& [p, c] : count)
      if (c > 0) heap.push({c, p});
    std::vector<uint8_t> stamp(words.size(), 0);
    std::vector<uint64_t> touched;
    std::unordered_set<uint64_t> rejected;
    while (int32_t(merges.size()) < n_new && !heap.empty()) {
      Candidate top = heap.top();
      heap.pop();
      auto it = count.find(top.pair);
      int64_t cur = it == count.end() ? 0 : it->second;
      if (cur != top.count) {  // stale entry: requeue with the current count
        if (cur > 0) heap.push({cur, top.pair});
        continue;
      }
      if (cur <= 0 || rejected.count(top.pair)) continue;
      Pair pr = unpack(top.pair);
      std::string merged = bytes[size_t(pr.a)] + bytes[size_t(pr.b)];
      if (existing.count(merged) || forbidden(merged)) {
        rejected.insert(top.pair);
        continue;
      }
      const int32_t id = int32_t(bytes.size());
      bytes.push_back(merged);
      existing.insert(merged);
      merges.push_back(pr);

      std::vector<uint32_t> list = std::move(where[top.pair]);
      where.erase(top.pair);
      touched.clear();
      for (uint32_t w : list) {
        if (stamp[w]) continue;  // listed twice
        stamp[w] = 1;
        auto& s = words[w];
        bool has = false;
        for (size_t i = 0; i + 1 < s.size() && !has; ++i) has = s[i] == pr.a && s[i + 1] == pr.b;
        if (!has) continue;
        add_pairs(w, -1, nullptr);
        size_t o = 0;
        for (size_t i = 0; i < s.size();) {
          if (i + 1 < s.size() && s[i] == pr.a && s[i + 1] == pr.b) {
            s[o++] = id;
            i += 2;
          } else {
            s[o++] = s[i++];
          }
        }
        s.resize(o);
        add_pairs(w, +1, &touched);
      }
      for (uint32_t w : list) stamp[w] = 0;
      count.erase(top.pair);
      std::sort(touched.begin(), touched.end());
      touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
      for (uint64_t p : touched) {
        int64_t c = count[p];
        if (c > 0) heap.push({c, p});
      }
    }
  }
};

void write_json_string(std::string& out, const std::string& s) { out += json(s).dump(); }

}  // namespace

BpeTrainer::BpeTrainer(const std::string& template_path)
    : template_path_(template_path),
      template_tok_(Tokenizer::load(template_path)),
      template_json_(text_detail::read_tokenizer_text(template_path)) {}

void BpeTrainer::add_text(std::string_view text) {
  template_tok_.pre_tokenize(text, [this](std::string_view w) { ++words_[std::string(w)]; });
}

void BpeTrainer::add_file(const std::string& path) {
  std::string data = read_file(path);
  if (!ends_with(path, ".jsonl")) {
    try {
      add_text(data);
    } catch (const Error& e) {
      throw Error(path + ": " + e.what());
    }
    return;
  }
  size_t pos = 0, line = 0;
  while (pos < data.size()) {
    size_t nl = data.find('\n', pos);
    if (nl == std::string::npos) nl = data.size();
    ++line;
    std::string_view l(data.data() + pos, nl - pos);
    pos = nl + 1;
    if (l.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const std::string where = path + ":" + std::to_string(line);
    json j;
    try {
      j = json::parse(l);
    } catch (const json::exception& e) {
      throw Error(where + ": invalid JSON: " + e.what());
    }
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
      throw Error(where + ": expected an object with a string field \"text\"");
    try {
      add_text(j["text"].get_ref<const std::string&>());
    } catch (const Error& e) {
      throw Error(where + ": " + e.what());
    }
  }
}

BpeTrainResult BpeTrainer::train(int32_t vocab_size) const {
  Template t = parse_template(template_path_, template_json_);
  const std::string& tp = template_path_;

  // Added tokens: those in the template's model vocab go first in the model vocab; the rest
  // follow it, in template order (what HF assigns when it loads the file).
  struct Added {
    json entry;
    bool in_vocab;
  };
  std::vector<Added> added;
  std::unordered_set<std::string> added_contents;
  int32_t n_in_vocab = 0, n_outside = 0;
  for (const json& e : t.root["added_tokens"]) {
    if (!e.is_object() || !e.contains("content") || !e["content"].is_string())
      throw Error("tokenizer template " + tp + ": added token without string content");
    const std::string& c = e["content"].get_ref<const std::string&>();
    if (!added_contents.insert(c).second) continue;  // HF keeps one token per content
    bool in_vocab = t.vocab.count(c) > 0;
    added.push_back({e, in_vocab});
    (in_vocab ? n_in_vocab : n_outside)++;
  }
  const int64_t min_size = int64_t(n_in_vocab) + 256 + n_outside;
  if (vocab_size < min_size)
    throw Error("vocab size " + std::to_string(vocab_size) + " is too small: the 256 byte tokens and the " +
                std::to_string(added.size()) + " added tokens of " + tp + " need at least " + std::to_string(min_size));

  Trainer tr;
  for (int b = 0; b < 256; ++b) tr.bytes.emplace_back(1, char(b));
  // Sorted word list: the symbol order of `words` must not depend on hash order.
  std::vector<const std::pair<const std::string, uint64_t>*> sorted;
  sorted.reserve(words_.size());
  for (const auto& kv : words_) sorted.push_back(&kv);
  std::sort(sorted.begin(), sorted.end(), [](auto* x, auto* y) { return x->first < y->first; });
  for (auto* kv : sorted) {
    std::vector<int32_t> s;
    for (unsigned char c : kv->first) s.push_back(c);
    tr.words.push_back(std::move(s));
    tr.freq.push_back(kv->second);
  }
  const int32_t n_new = vocab_size - int32_t(min_size);
  tr.run(n_new, [&](const std::string& merged) {
    return added_contents.count(text_detail::byte_level_encode(merged)) > 0;
  });

  // Final ids.
  const auto& alpha = text_detail::byte_level_alphabet();
  std::vector<int> byte_order(256);
  for (int b = 0; b < 256; ++b) byte_order[size_t(b)] = b;
  std::sort(byte_order.begin(), byte_order.end(),
            [&](int x, int y) { return alpha.byte_to_cp[x] < alpha.byte_to_cp[y]; });
  std::vector<int32_t> final_id(tr.bytes.size());
  for (int i = 0; i < 256; ++i) final_id[size_t(byte_order[size_t(i)])] = n_in_vocab + i;
  for (size_t i = 256; i < tr.bytes.size(); ++i) final_id[i] = n_in_vocab + int32_t(i);
  const int32_t model_vocab = n_in_vocab + int32_t(tr.bytes.size());

  // model.vocab in id order.
  std::vector<std::string> vocab_text(static_cast<size_t>(model_vocab));
  {
    int32_t k = 0, o = model_vocab;
    for (Added& a : added) a.entry["id"] = a.in_vocab ? k++ : o++;
    for (const Added& a : added)
      if (a.in_vocab) vocab_text[size_t(a.entry["id"].get<int32_t>())] = a.entry["content"].get<std::string>();
    for (size_t i = 0; i < tr.bytes.size(); ++i)
      vocab_text[size_t(final_id[i])] = text_detail::byte_level_encode(tr.bytes[i]);
  }
  {
    std::unordered_set<std::string> seen;
    for (const std::string& v : vocab_text)
      if (!seen.insert(v).second)
        throw Error("tokenizer template " + tp + ": added token '" + v + "' is also a byte token");
  }

  // Write in the release's layout: its top-level key order, model fields, then vocab, merges.
  std::string out = "{\n";
  bool first = true;
  auto key = [&](const std::string& k) {
    if (!first) out += ",\n";
    first = false;
    out += "  ";
    write_json_string(out, k);
    out += ": ";
  };
  const char* const kTop[] = {"version", "truncation", "padding", "added_tokens", "normalizer",
                              "pre_tokenizer", "post_processor", "decoder", "model"};
  std::vector<std::string> top_keys(std::begin(kTop), std::end(kTop));
  for (const auto& [k, v] : t.root.items())
    if (std::find(top_keys.begin(), top_keys.end(), k) == top_keys.end()) top_keys.insert(top_keys.end() - 1, k);
  for (const std::string& k : top_keys) {
    if (k == "added_tokens") {
      key(k);
      out += "[";
      for (size_t i = 0; i < added.size(); ++i) {
        out += i ? ",\n    " : "\n    ";
        // Release field order: id, content, then the flags.
        json::object_t e = added[i].entry.get<json::object_t>();
        out += "{\"id\": " + std::to_string(e["id"].get<int32_t>()) + ", \"content\": " + e["content"].dump();
        for (const auto& [fk, fv] : e)
          if (fk != "id" && fk != "content") out += ", " + json(fk).dump() + ": " + fv.dump();
        out += "}";
      }
      out += "\n  ]";
    } else if (k == "model") {
      key(k);
      out += "{";
      const json& m = t.root["model"];
      const char* const kModel[] = {"type", "dropout", "unk_token", "continuing_subword_prefix",
                                    "end_of_word_suffix", "fuse_unk", "byte_fallback", "ignore_merges"};
      std::vector<std::string> mk(std::begin(kModel), std::end(kModel));
      for (const auto& [fk, fv] : m.items())
        if (std::find(mk.begin(), mk.end(), fk) == mk.end() && fk != "vocab" && fk != "merges") mk.push_back(fk);
      for (const std::string& f : mk)
        if (m.contains(f)) out += "\n    " + json(f).dump() + ": " + m[f].dump() + ",";
      out += "\n    \"vocab\": {";
      for (size_t i = 0; i < vocab_text.size(); ++i) {
        out += i ? ",\n      " : "\n      ";
        write_json_string(out, vocab_text[i]);
        out += ": " + std::to_string(i);
      }
      out += "\n    },\n    \"merges\": [";
      for (size_t i = 0; i < tr.merges.size(); ++i) {
        out += i ? ",\n      " : "\n      ";
        write_json_string(out, text_detail::byte_level_encode(tr.bytes[size_t(tr.merges[i].a)]) + " " +
                                   text_detail::byte_level_encode(tr.bytes[size_t(tr.merges[i].b)]));
      }
      out += "\n    ]\n  }";
    } else if (t.root.contains(k)) {
      key(k);
      out += t.root[k].dump();
    }
  }
  out += "\n}\n";

  BpeTrainResult r;
  r.json = std::move(out);
  r.model_vocab = model_vocab;
  r.vocab_size = model_vocab + n_outside;
  r.merges = int32_t(tr.merges.size());
  r.added_tokens = int32_t(added.size());
  r.distinct_words = words_.size();
  return r;
}

}  // namespace dsv4
