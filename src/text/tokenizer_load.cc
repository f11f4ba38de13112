// Loading an HF tokenizer.json (optionally gzip-compressed) into the tables encode/decode use.
#include <zlib.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/file.h"
#include "text/tokenizer_internal.h"

namespace dsv4 {
namespace text_detail {
namespace {

using nlohmann::json;

std::string gunzip(const std::string& path, const std::string& data) {
  z_stream zs{};
  // 15 + 32: accept a zlib or gzip header, the largest window.
  if (inflateInit2(&zs, 15 + 32) != Z_OK) throw Error(path + ": zlib init failed");
  std::string out;
  out.resize(std::max<size_t>(data.size() * 4, 1 << 16));
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = uInt(data.size());
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    if (zs.total_out == out.size()) out.resize(out.size() * 2);
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + zs.total_out);
    zs.avail_out = uInt(out.size() - zs.total_out);
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) {
      inflateEnd(&zs);
      throw Error(path + ": truncated gzip data");
    }
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
      std::string msg = zs.msg ? zs.msg : "error " + std::to_string(rc);
      inflateEnd(&zs);
      throw Error(path + ": corrupt gzip data (" + msg + ")");
    }
  }
  out.resize(zs.total_out);
  inflateEnd(&zs);
  return out;
}

// Parses tokenizer.json into a DOM, except model.vocab: its ~128k entries go straight into a
// list instead of a std::map<string, json>, which roughly halves the load time.
class VocabCapturingSax : public nlohmann::json_sax<json> {
 public:
  VocabCapturingSax(json& root, std::vector<std::pair<std::string, int64_t>>& vocab) : dom_(root, true), vocab_(vocab) {}

  bool null() override { return capturing_ ? bad("null") : dom_.null(); }
  bool boolean(bool v) override { return capturing_ ? bad("a boolean") : dom_.boolean(v); }
  bool number_integer(number_integer_t v) override { return capturing_ ? take(v) : dom_.number_integer(v); }
  bool number_unsigned(number_unsigned_t v) override {
    if (capturing_) return v > uint64_t(INT64_MAX) ? bad("a huge number") : take(int64_t(v));
    return dom_.number_unsigned(v);
  }
  bool number_float(number_float_t v, const string_t& s) override {
    return capturing_ ? bad("a float") : dom_.number_float(v, s);
  }
  bool string(string_t& v) override { return capturing_ ? bad("a string") : dom_.string(v); }
  bool binary(binary_t& v) override { return capturing_ ? bad("binary") : dom_.binary(v); }
  bool start_object(std::size_t n) override {
    if (capturing_) return bad("an object");
    std::string name = names_.empty() ? "" : last_key_;
    bool vocab = names_.size() == 2 && names_[1] == "model" && name == "vocab";
    names_.push_back(name);
    if (vocab) {
      capturing_ = true;
      // The DOM keeps an empty object, so the rest of the loader sees the usual structure.
      return dom_.start_object(0) && dom_.end_object();
    }
    return dom_.start_object(n);
  }
  bool key(string_t& k) override {
    if (capturing_) {
      pending_ = std::move(k);
      return true;
    }
    last_key_ = k;
    return dom_.key(k);
  }
  bool end_object() override {
    names_.pop_back();
    if (capturing_) {
      capturing_ = false;
      return true;
    }
    return dom_.end_object();
  }
  bool start_array(std::size_t n) override {
    if (capturing_) return bad("an array");
    names_.push_back(last_key_);
    return dom_.start_array(n);
  }
  bool end_array() override {
    names_.pop_back();
    return dom_.end_array();
  }
  bool parse_error(std::size_t pos, const std::string& tok, const nlohmann::detail::exception& e) override {
    return dom_.parse_error(pos, tok, e);
  }

 private:
  bool take(int64_t v) {
    vocab_.emplace_back(std::move(pending_), v);
    return true;
  }
  bool bad(const char* what) {
    throw Error(std::string("model.vocab entry '") + pending_ + "' is " + what + ", not a token id");
  }

  nlohmann::detail::json_sax_dom_parser<json> dom_;
  std::vector<std::pair<std::string, int64_t>>& vocab_;
  std::vector<std::string> names_;  // key that led to each open container ("" at the root)
  std::string last_key_, pending_;
  bool capturing_ = false;
};

struct Loader {
  const std::string& path;
  TokenizerImpl& t;
  std::vector<std::pair<std::string, int64_t>> vocab_entries;  // model.vocab, from the SAX pass

  [[noreturn]] void fail(const std::string& what) const { throw Error("tokenizer " + path + ": " + what); }

  // A member of an object by reference, or null (json::value() would copy whole subtrees).
  static const json& field(const json& j, const char* key) {
    static const json null_json;
    if (!j.is_object()) return null_json;
    auto it = j.find(key);
    return it == j.end() ? null_json : *it;
  }

  static std::string type_of(const json& j) {
    if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) return "";
    return j["type"].get<std::string>();
  }

  bool get_bool(const json& j, const char* key, bool dflt) const {
    if (!j.contains(key) || j[key].is_null()) return dflt;
    if (!j[key].is_boolean()) fail(std::string("field '") + key + "' is not a boolean");
    return j[key].get<bool>();
  }

  void check_normalizer(const json& n) const {
    if (n.is_null()) return;
    // Only the identity is supported: implementing NFC/NFKC etc. would need Unicode tables.
    if (type_of(n) == "Sequence" && n.contains("normalizers") && n["normalizers"].is_array()) {
      for (const json& c : n["normalizers"]) check_normalizer(c);
      return;
    }
    fail("unsupported normalizer '" + type_of(n) + "'");
  }

  void add_pre_tokenizer(const json& p) {
    std::string type = type_of(p);
    if (type == "Sequence") {
      if (!p.contains("pretokenizers") || !p["pretokenizers"].is_array()) fail("pre_tokenizer Sequence without a list");
      // A Sequence applies each step to every piece the previous steps produced, so nested
      // sequences flatten into one list of steps.
      for (const json& c : p["pretokenizers"]) add_pre_tokenizer(c);
    } else if (type == "Split") {
      PreStep s{PreStep::Split, nullptr};
      const json& pat = field(p, "pattern");
      try {
        if (pat.contains("Regex") && pat["Regex"].is_string()) {
          s.regex = std::make_unique<Regex>(pat["Regex"].get<std::string>(), false);
        } else if (pat.contains("String") && pat["String"].is_string()) {
          s.regex = std::make_unique<Regex>(pat["String"].get<std::string>(), true);
        } else {
          fail("Split pre-tokenizer without a Regex or String pattern");
        }
      } catch (const Error& e) {
        fail(e.what());
      }
      std::string b = p.value("behavior", std::string());
      if (b == "Removed") s.behavior = SplitBehavior::Removed;
      else if (b == "Isolated") s.behavior = SplitBehavior::Isolated;
      else if (b == "MergedWithPrevious") s.behavior = SplitBehavior::MergedWithPrevious;
      else if (b == "MergedWithNext") s.behavior = SplitBehavior::MergedWithNext;
      else if (b == "Contiguous") s.behavior = SplitBehavior::Contiguous;
      else fail("unsupported Split behavior '" + b + "'");
      s.invert = get_bool(p, "invert", false);
      t.steps.push_back(std::move(s));
    } else if (type == "ByteLevel") {
      PreStep s{PreStep::ByteLevel, nullptr};
      s.add_prefix_space = get_bool(p, "add_prefix_space", true);
      if (get_bool(p, "use_regex", true)) {
        // GPT-2's split pattern, which HF's ByteLevel uses when use_regex is set.
        s.regex = std::make_unique<Regex>(
            R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)", false);
      }
      t.steps.push_back(std::move(s));
    } else {
      fail("unsupported pre_tokenizer '" + type + "'");
    }
  }

  void load(const json& j) {
    if (!j.is_object()) fail("not a JSON object");
    check_normalizer(field(j, "normalizer"));

    const json& pt = field(j, "pre_tokenizer");
    if (!pt.is_null()) add_pre_tokenizer(pt);
    // Encoding works on token ids of single bytes, which is only right when the text reaching
    // the model has gone through the byte-level mapping, and nothing may split after it.
    if (t.steps.empty() || t.steps.back().kind != PreStep::ByteLevel) fail("pre_tokenizer must end with ByteLevel");
    for (size_t i = 0; i + 1 < t.steps.size(); ++i)
      if (t.steps[i].kind == PreStep::ByteLevel) fail("only one ByteLevel pre_tokenizer step is supported");

    const json& pp = field(j, "post_processor");
    // ByteLevel post-processing only trims offsets; ids are unchanged.
    if (!pp.is_null() && type_of(pp) != "ByteLevel") fail("unsupported post_processor '" + type_of(pp) + "'");
    const json& dec = field(j, "decoder");
    if (!dec.is_null() && type_of(dec) != "ByteLevel") fail("unsupported decoder '" + type_of(dec) + "'");
    t.byte_level_decoder = !dec.is_null();

    load_model(field(j, "model"));
    if (!field(j, "added_tokens").is_null()) load_added(field(j, "added_tokens"));
    finish();
  }

  void set_text(int32_t id, const std::string& s) {
    if (id < 0) fail("negative token id " + std::to_string(id));
    if (size_t(id) >= t.id_to_text.size()) {
      t.id_to_text.resize(size_t(id) + 1);
      t.has_id.resize(size_t(id) + 1, 0);
    }
    t.id_to_text[size_t(id)] = s;
    t.has_id[size_t(id)] = 1;
  }

  void load_model(const json& m) {
    if (type_of(m) != "BPE") fail("unsupported model type '" + type_of(m) + "' (only BPE)");
    if (m.contains("dropout") && !m["dropout"].is_null() && m["dropout"].get<double>() != 0.0)
      fail("BPE dropout is not supported");
    if (get_bool(m, "byte_fallback", false)) fail("BPE byte_fallback is not supported");
    for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (m.contains(k) && !m[k].is_null() && !m[k].get<std::string>().empty())
        fail(std::string("BPE ") + k + " is not supported");
    t.ignore_merges = get_bool(m, "ignore_merges", false);

    if (!field(m, "vocab").is_object() || vocab_entries.empty()) fail("model.vocab is missing or empty");
    t.vocab.reserve(vocab_entries.size());
    for (auto& [tok, id] : vocab_entries) {
      if (id < 0 || id > INT32_MAX - 1) fail("vocab entry '" + tok + "' has id out of range");
      set_text(int32_t(id), tok);
      t.vocab[std::move(tok)] = int32_t(id);
    }
    vocab_entries.clear();
    vocab_entries.shrink_to_fit();

    const ByteLevelAlphabet& a = byte_level_alphabet();
    for (int b = 0; b < 256; ++b) {
      std::string ch;
      append_utf8(ch, a.byte_to_cp[b]);
      auto it = t.vocab.find(ch);
      if (it == t.vocab.end()) fail("byte-level vocab lacks the token for byte " + std::to_string(b));
      t.byte_id[b] = it->second;
    }

    const json& merges = field(m, "merges");
    if (!merges.is_array() && !merges.is_null()) fail("model.merges is not a list");
    t.merges.reserve(merges.size());
    uint32_t rank = 0;
    std::string both;
    for (const json& mj : merges) {
      std::string_view l, r;
      if (mj.is_string()) {
        std::string_view sv = mj.get_ref<const std::string&>();
        size_t sp = sv.find(' ');
        if (sp == std::string_view::npos || sv.find(' ', sp + 1) != std::string_view::npos)
          fail("merge " + std::to_string(rank + 1) + " is not two tokens: '" + std::string(sv) + "'");
        l = sv.substr(0, sp);
        r = sv.substr(sp + 1);
      } else if (mj.is_array() && mj.size() == 2 && mj[0].is_string() && mj[1].is_string()) {
        l = mj[0].get_ref<const std::string&>();
        r = mj[1].get_ref<const std::string&>();
      } else {
        fail("merge " + std::to_string(rank + 1) + " is malformed");
      }
      both.assign(l);
      both.append(r);
      auto li = t.vocab.find(l), ri = t.vocab.find(r), mi = t.vocab.find(std::string_view(both));
      if (li == t.vocab.end() || ri == t.vocab.end() || mi == t.vocab.end())
        fail("merge " + std::to_string(rank + 1) + " ('" + std::string(l) + "' '" + std::string(r) +
             "') uses a token not in the vocab");
      t.merges.insert(li->second, ri->second, rank, mi->second);
      ++rank;
    }
  }

  void load_added(const json& list) {
    if (!list.is_array()) fail("added_tokens is not a list");
    for (const json& e : list) {
      if (!e.is_object() || !e.contains("id") || !e["id"].is_number_integer() || !e.contains("content") ||
          !e["content"].is_string())
        fail("added token without integer id and string content");
      AddedToken a;
      int64_t id = e["id"].get<int64_t>();
      if (id < 0 || id > INT32_MAX - 1) fail("added token id out of range");
      a.id = int32_t(id);
      a.content = e["content"].get<std::string>();
      if (a.content.empty()) fail("added token " + std::to_string(id) + " has empty content");
      a.special = get_bool(e, "special", false);
      // HF's AddedToken default: normalized = !special.
      a.normalized = get_bool(e, "normalized", !a.special);
      a.lstrip = get_bool(e, "lstrip", false);
      a.rstrip = get_bool(e, "rstrip", false);
      a.single_word = get_bool(e, "single_word", false);
      t.added.push_back(std::move(a));
    }
  }

  // HF does not take added-token ids from the file: it re-assigns them while loading (the
  // id of the same content in the model vocab, else the next id after the vocab and the
  // tokens added so far) and only warns when they differ. A file whose ids disagree would
  // therefore encode differently in HF than the file says, so it is rejected.
  void check_added_ids() const {
    std::unordered_map<std::string, int32_t> assigned;
    int64_t max_added = -1;
    const int64_t vocab_len = int64_t(t.vocab.size());
    for (const AddedToken& a : t.added) {
      int64_t id;
      if (auto it = assigned.find(a.content); it != assigned.end()) id = it->second;
      else if (auto v = t.vocab.find(a.content); v != t.vocab.end()) id = v->second;
      else if (max_added < 0) id = vocab_len;
      else id = (max_added >= vocab_len || vocab_len == 0) ? max_added + 1 : vocab_len;
      if (id != a.id)
        fail("added token '" + a.content + "' has id " + std::to_string(a.id) + " but HF tokenizers would give it id " +
             std::to_string(id));
      assigned[a.content] = int32_t(id);
      max_added = std::max(max_added, id);
    }
  }

  void finish() {
    check_added_ids();
    for (const AddedToken& a : t.added) {
      set_text(a.id, a.content);
      t.added_vocab[a.content] = a.id;
    }
    std::unordered_map<std::string, bool> special_contents;
    for (const AddedToken& a : t.added)
      if (a.special) special_contents[a.content] = true;

    const ByteLevelAlphabet& alpha = byte_level_alphabet();
    size_t n = t.id_to_text.size();
    t.id_to_bytes.resize(n);
    t.skip_if_special.assign(n, 0);
    for (size_t id = 0; id < n; ++id) {
      if (!t.has_id[id]) continue;
      const std::string& s = t.id_to_text[id];
      // HF decides "special" by the token's content, not its id.
      t.skip_if_special[id] = special_contents.count(s) ? 1 : 0;
      if (!t.byte_level_decoder) {
        t.id_to_bytes[id] = s;
        continue;
      }
      // HF's ByteLevel decoder maps a token char by char back to bytes; if any char is outside
      // the byte alphabet (e.g. '｜' in an added token), the token's own UTF-8 is used instead.
      std::string bytes;
      bool all = true;
      for (size_t i = 0; i < s.size() && all;) {
        uint8_t c = uint8_t(s[i]);
        size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        uint32_t cp = len == 1 ? c : c & (0xFF >> (len + 1));
        for (size_t k = 1; k < len && i + k < s.size(); ++k) cp = (cp << 6) | (uint8_t(s[i + k]) & 0x3F);
        auto it = alpha.cp_to_byte.find(cp);
        if (it == alpha.cp_to_byte.end()) all = false;
        else bytes += char(it->second);
        i += len;
      }
      t.id_to_bytes[id] = all ? bytes : s;
    }

    // Two matchers, as HF: tokens with normalized=false are found in the raw text first; the
    // others are then looked for in what is left (after normalization, which is the identity).
    std::vector<const AddedToken*> raw, norm;
    for (const AddedToken& a : t.added) (a.normalized ? norm : raw).push_back(&a);
    t.match_raw.build(raw);
    t.match_normalized.build(norm);
    // HF tests single_word boundaries with the `regex` crate's \w, whose Unicode definition is
    // Alphabetic + marks + decimal digits + connector punctuation + Join_Control.
    t.word_char = std::make_unique<Regex>(R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}])", false);
    t.space_char = std::make_unique<Regex>(R"(\p{White_Space})", false);
  }
};

}  // namespace

void TokenMatcher::build(const std::vector<const AddedToken*>& tokens) {
  nodes_.assign(1, Node{});
  for (const AddedToken* tok : tokens) {
    int32_t cur = 0;
    for (unsigned char c : tok->content) {
      auto& next = nodes_[size_t(cur)].next;
      auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(uint8_t(c), int32_t(-1)));
      if (it != next.end() && it->first == c) {
        cur = it->second;
      } else {
        int32_t idx = int32_t(nodes_.size());
        next.insert(it, {uint8_t(c), idx});
        nodes_.emplace_back();
        cur = idx;
      }
    }
    // Duplicate contents: HF's map keeps one token per content; the last one added wins.
    nodes_[size_t(cur)].token = tok;
    first_[uint8_t(tok->content[0])] = true;
  }
}

const AddedToken* TokenMatcher::match_at(std::string_view s, size_t pos, size_t* len) const {
  const AddedToken* best = nullptr;
  int32_t cur = 0;
  for (size_t i = pos; i < s.size(); ++i) {
    const auto& next = nodes_[size_t(cur)].next;
    uint8_t c = uint8_t(s[i]);
    auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(c, int32_t(-1)));
    if (it == next.end() || it->first != c) break;
    cur = it->second;
    if (nodes_[size_t(cur)].token) {
      best = nodes_[size_t(cur)].token;
      *len = i + 1 - pos;
    }
  }
  return best;
}

}  // namespace text_detail

namespace text_detail {
std::string read_tokenizer_text(const std::string& path) {
  std::string data = read_file(path);
  if (data.size() >= 2 && uint8_t(data[0]) == 0x1f && uint8_t(data[1]) == 0x8b) data = gunzip(path, data);
  return data;
}
}  // namespace text_detail

Tokenizer Tokenizer::load(const std::string& path) {
  std::string data = text_detail::read_tokenizer_text(path);
  auto impl = std::make_shared<text_detail::TokenizerImpl>();
  impl->path = path;
  text_detail::Loader loader{path, *impl, {}};
  nlohmann::json j;
  try {
    text_detail::VocabCapturingSax sax(j, loader.vocab_entries);
    nlohmann::json::sax_parse(data, &sax);
  } catch (const nlohmann::json::exception& e) {
    throw Error("tokenizer " + path + ": invalid JSON: " + e.what());
  } catch (const Error& e) {
    throw Error("tokenizer " + path + ": " + e.what());
  }
  data.clear();
  data.shrink_to_fit();
  try {
    loader.load(j);
  } catch (const nlohmann::json::exception& e) {
    throw Error("tokenizer " + path + ": " + e.what());
  }
  return Tokenizer(std::move(impl));
}

namespace {

// The pre-tokenizer of DeepSeek V3 / V4 (llama.cpp's "deepseek-v3"), as the release's
// tokenizer.json states it.
const char* const kDeepseekV3PreTokenizer = R"JSON({"type": "Sequence", "pretokenizers": [
  {"type": "Split", "pattern": {"Regex": "\\p{N}{1,3}"}, "behavior": "Isolated", "invert": false},
  {"type": "Split", "pattern": {"Regex": "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"}, "behavior": "Isolated", "invert": false},
  {"type": "Split", "pattern": {"Regex": "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"}, "behavior": "Isolated", "invert": false},
  {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]})JSON";

}  // namespace

Tokenizer Tokenizer::from_parts(const std::vector<std::string>& tokens, const std::vector<int64_t>& types,
                                const std::vector<std::string>& merges, const std::string& pre, const std::string& source) {
  if (pre != "deepseek-v3") throw Error("tokenizer " + source + ": pre-tokenizer '" + pre + "' is not supported (only deepseek-v3)");
  if (!types.empty() && types.size() != tokens.size())
    throw Error("tokenizer " + source + ": " + std::to_string(types.size()) + " token types for " + std::to_string(tokens.size()) + " tokens");
  auto impl = std::make_shared<text_detail::TokenizerImpl>();
  impl->path = source;
  text_detail::Loader loader{source, *impl, {}};
  nlohmann::json j;
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", nlohmann::json::array()}};
  j["pre_tokenizer"] = nlohmann::json::parse(kDeepseekV3PreTokenizer);
  j["post_processor"] = nullptr;
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  j["model"] = {{"type", "BPE"}, {"vocab", nlohmann::json::object()}, {"merges", merges}};
  nlohmann::json added = nlohmann::json::array();
  loader.vocab_entries.reserve(tokens.size());
  for (size_t id = 0; id < tokens.size(); ++id) {
    const int64_t type = types.empty() ? 1 : types[id];
    if (type < 1 || type > 6) throw Error("tokenizer " + source + ": token " + std::to_string(id) + " has unknown type " + std::to_string(type));
    loader.vocab_entries.emplace_back(tokens[id], static_cast<int64_t>(id));
    if (type == 3 || type == 4)
      added.push_back({{"id", id}, {"content", tokens[id]}, {"special", type == 3}, {"normalized", false}});
  }
  j["added_tokens"] = std::move(added);
  try {
    loader.load(j);
  } catch (const nlohmann::json::exception& e) {
    throw Error("tokenizer " + source + ": " + e.what());
  }
  return Tokenizer(std::move(impl));
}

}  // namespace dsv4
