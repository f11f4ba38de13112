// Training a byte-level BPE tokenizer.json with the V4 pre-tokenizer and special tokens.
//
// The pre-tokenizer, normalizer, decoder, post-processor and every added token (BOS / EOS /
// pad, the chat and DSML markers, the placeholders) come from a template tokenizer.json (the
// release's, assets/deepseek-v4-tokenizer.json.gz), so the V4 chat format works unchanged with
// the trained file; only the BPE vocabulary and merges are learned.
//
// Training is classic BPE: the corpus is split exactly as Tokenizer::encode splits text (added
// tokens, then the pre-tokenizer), identical words are counted, and starting from the 256
// single-byte tokens the most frequent adjacent pair is merged repeatedly. Ties are broken by
// the bytes of the pair (left token, then right token, smaller first), so the result does not
// depend on hash order or on the order of the input files' words. A pair whose merged bytes
// already are a token, or whose vocab string equals an added token's content, is never merged
// (HF would map such an added token onto the vocab entry), so every merge adds one token.
//
// Id layout (as the release): the template's added tokens that are also in its model vocab
// (BOS, EOS, pad) first, then the 256 byte tokens in GPT-2 byte-level order, then the merged
// tokens in merge order; the other added tokens follow the model vocab, in template order.
// `vocab_size` counts all of them: it is the vocab_size a model's config.json needs.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "text/tokenizer.h"

namespace dsv4 {

struct BpeTrainResult {
  std::string json;             // the tokenizer.json text
  int32_t vocab_size = 0;       // every id: model vocab + added tokens outside it
  int32_t model_vocab = 0;      // entries of model.vocab
  int32_t merges = 0;           // entries of model.merges
  int32_t added_tokens = 0;     // entries of added_tokens
  uint64_t distinct_words = 0;  // pre-tokenized words counted
};

class BpeTrainer {
 public:
  // Reads the template (.json or .json.gz). Throws Error naming it if it is unusable.
  explicit BpeTrainer(const std::string& template_path);

  // Counts the words of one document. Throws Error on invalid UTF-8.
  void add_text(std::string_view text);
  // A corpus file: `.jsonl` -> one JSON object per line, its string field "text" is a document;
  // anything else -> the whole file is one document. Errors name the file (and line).
  void add_file(const std::string& path);

  // Learns merges until the vocabulary holds `vocab_size` ids (fewer if the corpus runs out of
  // pairs: see the result). Throws Error if vocab_size cannot hold the bytes and added tokens.
  BpeTrainResult train(int32_t vocab_size) const;

  uint64_t distinct_words() const { return words_.size(); }

 private:
  std::string template_path_;
  Tokenizer template_tok_;
  std::string template_json_;  // the template's text (vocab and merges dropped when training)
  std::unordered_map<std::string, uint64_t> words_;
};

}  // namespace dsv4
