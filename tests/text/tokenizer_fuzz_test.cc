// Fuzz-style loops over the tokenizer with a fixed, seeded iteration budget (also run under
// AddressSanitizer + UBSan in CI): random and mutated bytes, including invalid UTF-8, into
// encode / decode / StreamDecoder. Errors are fine; crashes, sanitizer reports and broken
// invariants are not.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "base/error.h"
#include "text/tokenizer.h"

namespace dsv4 {
namespace {

const Tokenizer& tok() {
  static const Tokenizer t = Tokenizer::load(std::string(DSV4_ASSETS_DIR) + "/deepseek-v4-tokenizer.json.gz");
  return t;
}

// Seeds of valid text that mutations start from: scripts, emoji, whitespace, added tokens.
const char* const kSeeds[] = {
    "Hello, world! It's 2026.", "你好，世界！こんにちは", "Привет мир", "مرحبا بالعالم", "नमस्ते दुनिया",
    "👨‍👩‍👧‍👦🇯🇵1️⃣", "  \t\n\r\n\u3000\u00a0x", "12345678901234", "<｜User｜>hi<｜Assistant｜><think>",
    "｜DSML｜tool_calls>", "def f(x):\n    return x\n", "e\u0301\u0302\u0303", "<|place_holder_mm_span_0021|>",
};

bool encodes_ok(const std::string& s, bool parse_special, std::vector<int32_t>* ids) {
  try {
    *ids = tok().encode(s, parse_special);
    return true;
  } catch (const Error&) {
    return false;
  }
}

TEST(TokenizerFuzz, RandomAndMutatedBytes) {
  std::mt19937_64 rng(12345);
  const Tokenizer& t = tok();
  int ok = 0, rejected = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s;
    switch (rng() % 4) {
      case 0: {  // pure random bytes
        size_t n = rng() % 64;
        for (size_t i = 0; i < n; ++i) s += char(rng() & 0xFF);
        break;
      }
      case 1: {  // random bytes biased to UTF-8 lead / continuation bytes
        size_t n = rng() % 64;
        for (size_t i = 0; i < n; ++i) s += char(0x80 | (rng() & 0x7F));
        break;
      }
      default: {  // seeds concatenated, then a few byte flips / truncations / insertions
        int k = 1 + int(rng() % 4);
        for (int i = 0; i < k; ++i) s += kSeeds[rng() % std::size(kSeeds)];
        int muts = int(rng() % 3);
        for (int m = 0; m < muts && !s.empty(); ++m) {
          size_t pos = rng() % s.size();
          switch (rng() % 3) {
            case 0: s[pos] = char(rng() & 0xFF); break;
            case 1: s.resize(pos); break;
            default: s.insert(pos, 1, char(rng() & 0xFF)); break;
          }
        }
      }
    }
    std::vector<int32_t> ids;
    bool special = rng() & 1;
    if (!encodes_ok(s, special, &ids)) {
      ++rejected;
      continue;
    }
    ++ok;
    for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < t.vocab_size()) << id;
    // Accepted input was valid UTF-8, so byte-level BPE must give it back exactly.
    ASSERT_EQ(t.decode(ids), s);
    StreamDecoder sd(t);
    std::string streamed;
    for (int32_t id : ids) streamed += sd.push(id);
    streamed += sd.flush();
    ASSERT_EQ(streamed, s);
  }
  // Both paths must have been exercised.
  EXPECT_GT(ok, 500);
  EXPECT_GT(rejected, 500);
}

TEST(TokenizerFuzz, RandomIds) {
  std::mt19937_64 rng(777);
  const Tokenizer& t = tok();
  const int32_t v = t.vocab_size();
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<int32_t> ids;
    size_t n = rng() % 16;
    bool include_invalid = rng() % 8 == 0;
    for (size_t i = 0; i < n; ++i) {
      uint64_t r = rng() % 4;
      int32_t id = r == 0 ? int32_t(rng() % 256) : r == 1 ? int32_t(128000 + rng() % 1280) : int32_t(rng() % uint64_t(v));
      ids.push_back(id);
    }
    if (include_invalid) ids.insert(ids.begin() + ptrdiff_t(rng() % (ids.size() + 1)), (rng() & 1) ? v + int32_t(rng() % 1000) : -1 - int32_t(rng() % 1000));
    bool skip = rng() & 1;
    std::string text;
    try {
      text = t.decode(ids, skip);
    } catch (const Error&) {
      ASSERT_TRUE(include_invalid);
      continue;
    }
    ASSERT_FALSE(include_invalid);
    // Output is valid UTF-8 (encode would reject anything else) and streaming agrees.
    std::vector<int32_t> again;
    ASSERT_NO_THROW(again = t.encode(text));
    StreamDecoder sd(t, skip);
    std::string streamed;
    for (int32_t id : ids) {
      std::string part = sd.push(id);
      ASSERT_NO_THROW(t.encode(part));  // each piece is whole UTF-8 characters
      streamed += part;
    }
    streamed += sd.flush();
    ASSERT_EQ(streamed, text);
  }
}

// Long inputs: a single huge word (the O(n log n) merge path), long whitespace / digit /
// punctuation runs, and many added tokens in a row.
TEST(TokenizerFuzz, LongRuns) {
  const Tokenizer& t = tok();
  std::mt19937_64 rng(99);
  std::vector<std::string> inputs;
  std::string word;
  for (int i = 0; i < 20000; ++i) word += char('a' + rng() % 26);
  inputs.push_back(word);
  inputs.push_back(std::string(50000, 'a'));
  inputs.push_back(std::string(20000, ' ') + "x" + std::string(20000, '\n'));
  inputs.push_back(std::string(30000, '7'));
  inputs.push_back(std::string(30000, '!'));
  std::string cjk;
  for (int i = 0; i < 5000; ++i) cjk += "\xe4\xbd\xa0";  // 你 x 5000
  inputs.push_back(cjk);
  std::string specials;
  for (int i = 0; i < 2000; ++i) specials += "<｜User｜><think>";
  inputs.push_back(specials);
  for (const std::string& s : inputs) {
    for (bool special : {true, false}) {
      std::vector<int32_t> ids = t.encode(s, special);
      ASSERT_FALSE(ids.empty());
      ASSERT_EQ(t.decode(ids), s);
    }
  }
}

}  // namespace
}  // namespace dsv4
