// Internals of the tokenizer, shared by its source files (not part of the public API).
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "text/tokenizer.h"

namespace dsv4::text_detail {

// ---- UTF-8 (tokenizer_utf8.cc) ----
// Offset of the first byte that does not start a well-formed UTF-8 sequence, or npos.
size_t find_invalid_utf8(std::string_view s);
// Appends bytes[0..n) to `out` as UTF-8 text, each maximal invalid subsequence replaced by
// U+FFFD (Rust from_utf8_lossy / WHATWG decoding). If `final` is false, an incomplete but
// so-far-valid sequence at the very end is not consumed; returns how many bytes were consumed.
size_t append_utf8_lossy(std::string& out, std::string_view bytes, bool final);
void append_utf8(std::string& out, uint32_t cp);

// ---- byte-level alphabet (tokenizer_bpe.cc) ----
// GPT-2's reversible byte <-> printable code point map, computed by its defining rule.
struct ByteLevelAlphabet {
  uint32_t byte_to_cp[256];
  std::unordered_map<uint32_t, uint8_t> cp_to_byte;
  ByteLevelAlphabet();
};
const ByteLevelAlphabet& byte_level_alphabet();
std::string byte_level_encode(std::string_view bytes);  // raw bytes -> vocab-form string

// ---- BPE over token ids (tokenizer_bpe.cc) ----
// Merges are applied to ids, never to strings: the initial symbols of a word are the ids of its
// single bytes, and a merge (a, b) -> (rank, c) replaces adjacent ids a b by c. This avoids
// building byte-level strings while encoding.
class BpeMerges {
 public:
  void reserve(size_t n);
  void insert(int32_t a, int32_t b, uint32_t rank, int32_t merged);  // later insert wins
  // Rank and merged id of the pair, or false.
  bool find(int32_t a, int32_t b, uint32_t* rank, int32_t* merged) const {
    if (slots_.empty()) return false;
    uint64_t key = pack(a, b);
    size_t mask = slots_.size() - 1;
    for (size_t i = hash(key) & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.key == key) {
        *rank = s.rank;
        *merged = s.merged;
        return true;
      }
      if (s.key == kEmpty) return false;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  struct Slot {
    uint64_t key = kEmpty;
    uint32_t rank = 0;
    int32_t merged = 0;
  };
  static uint64_t pack(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  static size_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return size_t(k);
  }
  void grow();
  std::vector<Slot> slots_;
  size_t count_ = 0;
};

// Applies the merges to `symbols` in place (lowest rank first, leftmost among equal ranks,
// exactly HF's order) and appends the result to `out`.
void bpe_merge(const BpeMerges& merges, std::vector<int32_t>& symbols, std::vector<int32_t>& out);

// ---- regexes (tokenizer_regex.cc) ----
// A compiled PCRE2 pattern (UTF + UCP, JIT when available) with Oniguruma's meaning of \s / \S
// (Unicode White_Space) so that patterns written for HF `tokenizers` match the same text.
class Regex {
 public:
  Regex(const std::string& pattern, bool literal);  // throws Error with PCRE2's message
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  // Appends (start, end) of every match in subject (already UTF-8 checked) to out, as
  // consecutive non-overlapping leftmost-first matches; empty matches included.
  void find_all(std::string_view subject, std::vector<std::pair<uint32_t, uint32_t>>& out) const;
  // Whether the pattern matches starting exactly at byte `pos` of subject.
  bool matches_at(std::string_view subject, size_t pos) const;

 private:
  void* code_ = nullptr;  // pcre2_code_8
  bool jit_ = false;
};
// Rewrites Oniguruma escapes whose PCRE2 meaning differs (\s, \S) into explicit properties.
std::string oniguruma_to_pcre2(const std::string& pattern);

// ---- files (tokenizer_load.cc) ----
// The text of a tokenizer.json, gunzipped if it is gzip-compressed. Errors name the path.
std::string read_tokenizer_text(const std::string& path);

// ---- the loaded tokenizer ----
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct PreStep {
  enum Kind { Split, ByteLevel } kind;
  std::unique_ptr<Regex> regex;  // Split: the pattern; ByteLevel with use_regex: GPT-2's
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
  bool add_prefix_space = false;  // ByteLevel
};

struct AddedToken {
  int32_t id;
  std::string content;
  bool special, normalized, lstrip, rstrip, single_word;
};

// Leftmost-longest matcher for a set of added tokens (what HF does with Aho-Corasick).
class TokenMatcher {
 public:
  void build(const std::vector<const AddedToken*>& tokens);
  bool empty() const { return nodes_.size() <= 1; }
  // Longest token starting at s[pos], or nullptr.
  const AddedToken* match_at(std::string_view s, size_t pos, size_t* len) const;
  bool can_start(uint8_t b) const { return first_[b]; }

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> next;  // sorted by byte
    const AddedToken* token = nullptr;
  };
  std::vector<Node> nodes_;
  bool first_[256] = {};
};

struct StrHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StrMap = std::unordered_map<std::string, int32_t, StrHash, std::equal_to<>>;

struct TokenizerImpl {
  std::string path;
  std::vector<std::string> id_to_text;    // raw vocab strings; empty + !has_id for holes
  std::vector<uint8_t> has_id;
  std::vector<std::string> id_to_bytes;   // what decoding one token yields
  std::vector<uint8_t> skip_if_special;   // content is that of an added token flagged special
  bool byte_level_decoder = true;         // false: no decoder, HF joins raw tokens with ' '
  bool ignore_merges = false;             // BPE: a word that is a vocab token is not merged
  StrMap vocab;        // model vocab
  StrMap added_vocab;  // added tokens
  std::vector<AddedToken> added;
  TokenMatcher match_raw;         // added tokens with normalized = false
  TokenMatcher match_normalized;  // added tokens with normalized = true
  std::vector<PreStep> steps;
  BpeMerges merges;
  int32_t byte_id[256];  // id of each single byte's vocab token, -1 if missing
  std::unique_ptr<Regex> word_char;  // Rust regex crate's \w (single_word boundaries)
  std::unique_ptr<Regex> space_char; // Rust regex crate's \s = White_Space (lstrip / rstrip)

  // Bounded word -> ids cache (cleared when full). Locked: encode() is const and thread-safe.
  static constexpr size_t kCacheMax = 1 << 16;
  static constexpr size_t kCacheMinBytes = 8;
  mutable std::mutex cache_mu;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StrHash, std::equal_to<>> cache;

  void encode_segment(std::string_view seg, std::vector<int32_t>& out) const;
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;
  void encode_text(std::string_view text, bool parse_special, std::vector<int32_t>& out) const;
};

}  // namespace dsv4::text_detail
