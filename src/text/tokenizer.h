// DeepSeek-V4 tokenizer: a byte-level BPE that loads a Hugging Face `tokenizer.json`
// (or `.json.gz`) and gives the same ids as HF `tokenizers` for the same file.
//
// Supported file contents (anything else is rejected at load time with an Error, so a
// different tokenizer never silently gives wrong ids):
//   model         BPE (merges as "a b" strings or [a, b] pairs), no dropout, no byte_fallback
//   normalizer    null or an empty Sequence
//   pre_tokenizer Sequence / Split (Regex or String pattern, all five behaviours, invert) /
//                 ByteLevel (add_prefix_space, use_regex); a ByteLevel step is required
//   post_processor null or ByteLevel (neither changes ids)
//   decoder       null or ByteLevel
//   added_tokens  with their special / normalized / lstrip / rstrip / single_word flags
//
// Input text must be valid UTF-8: encode() throws Error naming the byte offset of the first
// invalid sequence (HF's own bindings cannot even receive such text, so there is no
// reference behaviour to copy, and replacing bytes silently would change what the model sees).
// decode() output is always valid UTF-8: byte sequences that do not form UTF-8 become U+FFFD,
// one per maximal invalid subsequence, exactly like Rust's String::from_utf8_lossy that HF uses.
//
// Thread safety: a loaded Tokenizer is immutable apart from an internal, locked word cache;
// encode/decode may be called from several threads at once. Copies share the loaded tables.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dsv4 {

namespace text_detail {
struct TokenizerImpl;
}

class Tokenizer {
 public:
  // Loads `path` (.json, or gzip-compressed .json.gz, recognised by its magic bytes).
  // Throws Error naming the file for unreadable, malformed or unsupported files.
  static Tokenizer load(const std::string& path);

  // A byte-level BPE from the parts a GGUF file stores (tokenizer.ggml.*): `tokens` in id order,
  // their llama.cpp token types (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused,
  // 6 byte), `merges` as "left right" strings, and the pre-tokenizer name `pre` (only
  // "deepseek-v3", the V3 / V4 split rules, is supported). Control and user-defined tokens
  // become added tokens (control ones flagged special), matched in the raw text as HF does for
  // the release's tokenizer.json. `source` names the origin in errors.
  static Tokenizer from_parts(const std::vector<std::string>& tokens, const std::vector<int64_t>& types,
                              const std::vector<std::string>& merges, const std::string& pre, const std::string& source);

  // Text -> ids. No BOS/EOS is added. parse_special: added-token text in `text` becomes the
  // token's id (HF's default); when false no added token is matched at all and everything
  // goes through the pre-tokenizer and BPE. Throws Error on invalid UTF-8.
  std::vector<int32_t> encode(std::string_view text, bool parse_special = true) const;

  // Ids -> text. skip_special drops tokens whose `special` flag is true (as HF does).
  // Throws Error naming the first id outside the vocabulary.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;

  // Splits `text` exactly as encode() does (added tokens matched, then the pre-tokenizer) but,
  // instead of BPE-merging each pre-tokenized word, calls `word` with its raw bytes; added
  // tokens found in the text are skipped. Used to count words when training a BPE
  // (tokenizer_train.h). Throws Error on invalid UTF-8.
  void pre_tokenize(std::string_view text, const std::function<void(std::string_view)>& word) const;

  int32_t token_id(std::string_view token) const;  // -1 if absent
  std::string token_text(int32_t id) const;         // raw vocab string; Error if no such id
  bool is_special(int32_t id) const;                // an added token flagged special
  int32_t vocab_size() const;                       // highest id + 1

  // The bytes one token stands for when decoded (skip_special not applied). Error if no such id.
  const std::string& token_bytes(int32_t id) const;

 private:
  friend class StreamDecoder;
  explicit Tokenizer(std::shared_ptr<const text_detail::TokenizerImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const text_detail::TokenizerImpl> impl_;
};

// Streaming decoder: feed ids one at a time, get back only complete UTF-8 text. Bytes of a
// character split across tokens are held until the character is complete. The concatenation
// of every push() and the final flush() equals Tokenizer::decode() of all ids. Added tokens
// (special or not) are emitted whole as soon as they arrive; with skip_special only tokens
// flagged special are dropped, exactly as decode() does.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = false);
  std::string push(int32_t id);  // Error for an invalid id (the decoder state is unchanged)
  std::string flush();           // emits held incomplete bytes as U+FFFD and resets

 private:
  Tokenizer tokenizer_;
  bool skip_special_;
  std::string pending_;  // bytes of an incomplete UTF-8 character (at most 3)
  bool started_ = false;  // a token was emitted (only used without a ByteLevel decoder)
};

}  // namespace dsv4
