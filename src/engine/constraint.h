// Constrained decoding: a token mask applied to the logits before sampling, so the output is
// guaranteed to follow a given shape instead of hoping the model does.
//
// A constraint works on the *bytes* each token decodes to (Tokenizer::token_bytes), so any
// tokenization of an allowed text is allowed. Before each sampling step the caller asks which
// tokens may come next (mask), samples among them, and reports the chosen token (accept).
//
// Two constraints exist:
//  * ChoiceConstraint: the next tokens must be one of a set of token sequences (used to force
//    the DSML tool-call prefix plus one of the allowed function names for tool_choice
//    required / named).
//  * JsonConstraint: the output must be a JSON value, optionally following a JSON-schema
//    subset (response_format json_object / json_schema). A byte-level pushdown automaton with a
//    fixed-size, trivially copyable state, so checking one token is a copy plus a few byte steps.
//
// Bounds keep generation finite, which matters for small / random models that would otherwise
// produce an endless string or number: strings are at most max_string bytes, numbers at most
// 16 digits, arrays at most max_items items, free-form objects at most max_members members,
// nesting at most kMaxDepth levels. No whitespace is allowed between tokens (compact JSON).
// Supported schema keywords: type (object, array, string, integer, number, boolean, null; a
// list of types is treated as "any"), properties (all properties are written, in schema
// order), items, minItems/maxItems, maxLength, enum, const. Anything else is ignored (the value
// is then only required to be valid JSON of the given type).
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "text/json_py.h"
#include "text/tokenizer.h"

namespace dsv4 {

// Incremental UTF-8 check (RFC 3629: no overlong forms, surrogates or code points above
// U+10FFFF). `state` is 0 at a character boundary; utf8_pending(state) is the number of
// continuation bytes the current character still needs. Constrained strings use it so that a
// weak model picking byte tokens cannot leave invalid UTF-8 in a value.
bool utf8_step(uint32_t& state, unsigned char c);
inline int utf8_pending(uint32_t state) { return static_cast<int>(state >> 16); }

// The byte strings of every token id, computed once per tokenizer and shared.
struct TokenTable {
  std::vector<std::string> bytes;  // by id; empty for ids the tokenizer does not have
  std::vector<uint8_t> special;    // 1 for added tokens flagged special
  int32_t eos = -1;
  static std::shared_ptr<const TokenTable> build(const Tokenizer& tok, int32_t eos_id, int64_t model_vocab);
};

class TokenConstraint {
 public:
  virtual ~TokenConstraint() = default;
  virtual bool allows(int32_t token) const = 0;
  virtual void accept(int32_t token) = 0;
  // The constrained part is complete (ChoiceConstraint: the caller drops the constraint and
  // decodes freely; JsonConstraint: only EOS is allowed from here on).
  virtual bool done() const = 0;
  // Sets every disallowed logit to -inf. Returns the number of allowed tokens; if it is 0 the
  // logits are left untouched (the caller then ends the generation).
  size_t mask(std::span<float> logits) const;
};

// Forces one of several token sequences (the first token that differs picks the option). Token
// sequences rather than byte strings, so the forced text is written in the tokenization the
// model was trained on (byte-wise matching would let a weak model spell "｜" byte by byte).
class ChoiceConstraint : public TokenConstraint {
 public:
  ChoiceConstraint(std::vector<std::vector<int32_t>> options);
  bool allows(int32_t token) const override;
  void accept(int32_t token) override;
  bool done() const override { return done_; }
  // The option that was completed (valid when done()).
  int chosen() const { return chosen_; }

 private:
  std::vector<std::vector<int32_t>> options_;
  std::vector<uint8_t> alive_;
  size_t pos_ = 0;
  bool done_ = false;
  int chosen_ = -1;
};

class JsonConstraint : public TokenConstraint {
 public:
  static constexpr int kMaxDepth = 6;
  struct Limits {
    int max_string = 64;
    int max_items = 8;
    int max_members = 8;
    int max_any_depth = 3;  // nesting of free-form (schema-less) values
  };
  // `schema` null: any JSON object (json_object mode). Otherwise a JSON schema (subset above).
  // Throws Error for a schema it cannot compile (e.g. not an object, too deep).
  JsonConstraint(std::shared_ptr<const TokenTable> table, const json_py::Json& schema, Limits limits);
  JsonConstraint(std::shared_ptr<const TokenTable> table, const json_py::Json& schema)
      : JsonConstraint(std::move(table), schema, Limits{}) {}
  ~JsonConstraint() override;
  bool allows(int32_t token) const override;
  void accept(int32_t token) override;
  bool done() const override;

  // Byte-level check of a whole text (tests): true if `text` is a complete accepted value.
  bool accepts_text(std::string_view text) const;

  struct Schema;  // compiled schema nodes
  struct State;   // automaton state (trivially copyable)

 private:
  std::shared_ptr<const TokenTable> table_;
  std::unique_ptr<Schema> schema_;
  std::unique_ptr<State> state_;
};

}  // namespace dsv4
