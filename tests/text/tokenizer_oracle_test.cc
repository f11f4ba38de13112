// Randomized cross-check against Hugging Face `tokenizers` itself (the Rust library through the
// Node binding @anush008/tokenizers, installed in tests/oracle by scripts/setup.sh).
// Thousands of seeded random strings mixing scripts, emoji, whitespace, digits, punctuation and
// added-token text are encoded by both, in both parse_special modes; random id sequences are
// decoded by both. Any difference fails. A missing node / package fails too (never skips): the
// comparison is the point of this test.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/file.h"
#include "text/tokenizer.h"

namespace dsv4 {
namespace {

const std::string kTokenizerPath = std::string(DSV4_ASSETS_DIR) + "/deepseek-v4-tokenizer.json.gz";
const std::string kOracle = std::string(DSV4_ORACLE_DIR) + "/hf_tokenizers.js";

void put(std::string& s, uint32_t cp) {
  if (cp < 0x80) {
    s += char(cp);
  } else if (cp < 0x800) {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += char(0xE0 | (cp >> 12));
    s += char(0x80 | ((cp >> 6) & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  } else {
    s += char(0xF0 | (cp >> 18));
    s += char(0x80 | ((cp >> 12) & 0x3F));
    s += char(0x80 | ((cp >> 6) & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  }
}

// Random text built from fragments. Code point ranges are limited to characters assigned by
// Unicode 14 (PCRE2 10.42's tables); newer ones may be classified differently by the oracle's
// Oniguruma, which is a Unicode-version difference, not a tokenizer bug.
class TextGen {
 public:
  explicit TextGen(uint64_t seed) : rng_(seed) {}

  std::string text() {
    std::string s;
    int n = 1 + int(pick(24));
    for (int i = 0; i < n; ++i) fragment(s);
    return s;
  }

 private:
  uint32_t pick(uint32_t n) { return uint32_t(rng_() % n); }
  uint32_t range(uint32_t lo, uint32_t hi) { return lo + pick(hi - lo + 1); }
  void run(std::string& s, uint32_t lo, uint32_t hi, int maxlen) {
    int n = 1 + int(pick(uint32_t(maxlen)));
    for (int i = 0; i < n; ++i) put(s, range(lo, hi));
  }

  void fragment(std::string& s) {
    static const char* const kWords[] = {"the", "The", "hello", "world", "tokenizer", "don't", "I'm",
                                         "they're", "we've", "x", "ABC", "camelCase", "snake_case",
                                         "http://example.com/a?b=c", "e.g.", "U.S.A.", "naïve", "café"};
    static const char* const kSpecial[] = {"<｜User｜>", "<｜Assistant｜>", "<think>", "</think>", "｜DSML｜",
                                           "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<|EOT|>",
                                           "<｜latest_reminder｜>", "<｜/table>｜", "<｜image｜>",
                                           "<|place_holder_mm_span_0021|>", "<｜place▁holder▁no▁7｜>",
                                           "<｜User", "<think", "｜", "<｜", "</", "<｜DSML｜tool_calls>",
                                           "<｜tool▁calls▁begin｜>", "<｜fim▁hole｜>"};
    static const char* const kCode[] = {"def f(x):\n    return x + 1\n", "std::vector<int> v{1, 2};",
                                        "{\"a\": [1, 2.5e-3, null]}", "if (a && b) { c(); }", "#include <x.h>\n",
                                        "x = y // 2 ** 3", "SELECT * FROM t WHERE id=42;", "<div class=\"a\">",
                                        "$ ls -la ~/", "fn main() -> i32 {}", "a_b-c.d/e\\f"};
    static const uint32_t kSpaces[] = {' ', '\t', '\n', '\r', 0x0B, 0x0C, 0x3000, 0xA0, 0x2028, 0x2029, 0x85,
                                       0xFEFF, 0x200B, 0x180E, 0x2009, 0x202F, 0x205F, 0x1680, 0x200A};
    static const uint32_t kPunct[] = {0x201C, 0x201D, 0x2018, 0x2019, 0x2014, 0x2013, 0x2026, 0xB7, 0x2022,
                                      0x20AC, 0xA3, 0xA5, 0xA9, 0xAE, 0x2122, 0xB0, 0xB1, 0xD7, 0xF7, 0xA7,
                                      0xB6, 0x2211, 0x222B, 0x221A, 0x2190, 0x2192, 0x3001, 0x3002, 0xFF0C,
                                      0xFF01, 0x300C, 0x300D, 0x2E3A, 0xBF, 0xA1, 0x0964, 0x060C, 0x061F};
    static const uint32_t kEmoji[] = {0x1F600, 0x1F602, 0x1F60D, 0x1F44D, 0x1F389, 0x1F680, 0x2764, 0x1F525,
                                      0x1F914, 0x1F64F, 0x1F468, 0x1F469, 0x1F467, 0x1F466, 0x1F3F3, 0x2640,
                                      0x2642, 0x1F308, 0x1F431, 0x1F4A9, 0x263A, 0x2600, 0x26A1, 0x1F9D1};
    switch (pick(22)) {
      case 0: case 1: s += kWords[pick(std::size(kWords))]; break;
      case 2: run(s, 'a', 'z', 10); break;
      case 3: run(s, 'A', 'Z', 4); break;
      case 4: run(s, 0xC0, 0xD6, 3); run(s, 0x100, 0x17F, 3); break;           // accented Latin
      case 5: run(s, 0x4E00, 0x9FA5, 6); break;                                  // CJK
      case 6: run(s, 0x3041, 0x3096, 5); run(s, 0x30A1, 0x30FA, 4); break;       // kana
      case 7: run(s, 0xAC00, 0xD7A3, 4); break;                                  // Hangul
      case 8: run(s, 0x0410, 0x044F, 8); break;                                  // Cyrillic
      case 9: run(s, 0x0621, 0x064A, 6); run(s, 0x064B, 0x0652, 1); break;       // Arabic + harakat
      case 10: run(s, 0x0905, 0x0939, 4); run(s, 0x093E, 0x094D, 2); break;      // Devanagari
      case 11: run(s, 0x05D0, 0x05EA, 5); run(s, 0x0E01, 0x0E30, 4); run(s, 0x0391, 0x03A1, 3); break;
      case 12: {                                                                 // emoji
        int k = 1 + int(pick(3));
        for (int i = 0; i < k; ++i) {
          put(s, kEmoji[pick(std::size(kEmoji))]);
          uint32_t r = pick(6);
          if (r == 0) put(s, range(0x1F3FB, 0x1F3FF));  // skin tone
          if (r == 1) put(s, 0xFE0F);                   // emoji presentation
          if (r == 2 && i + 1 < k) put(s, 0x200D);      // ZWJ sequence
        }
        if (pick(4) == 0) { put(s, range(0x1F1E6, 0x1F1FF)); put(s, range(0x1F1E6, 0x1F1FF)); }  // flag
        if (pick(6) == 0) { put(s, range('0', '9')); put(s, 0xFE0F); put(s, 0x20E3); }            // keycap
        break;
      }
      case 13: case 14: {                                                        // whitespace runs
        int k = 1 + int(pick(5));
        for (int i = 0; i < k; ++i) {
          if (pick(5) == 0) s += "\r\n";
          else put(s, pick(2) ? uint32_t(' ') : kSpaces[pick(std::size(kSpaces))]);
        }
        break;
      }
      case 15: {                                                                 // digits
        run(s, '0', '9', 9);
        uint32_t r = pick(8);
        if (r == 0) run(s, 0xFF10, 0xFF19, 4);  // fullwidth
        if (r == 1) run(s, 0x0660, 0x0669, 4);  // Arabic-Indic
        if (r == 2) put(s, 0xB2 + pick(2));     // superscripts (No)
        if (r == 3) put(s, 0x2160 + pick(12));  // Roman numerals (Nl)
        if (r == 4) put(s, 0xBD);               // ½
        if (r == 5) s += ".";
        break;
      }
      case 16: {                                                                 // punctuation
        int k = 1 + int(pick(4));
        static const char kAscii[] = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
        for (int i = 0; i < k; ++i)
          put(s, pick(2) ? uint32_t(kAscii[pick(sizeof kAscii - 1)]) : kPunct[pick(std::size(kPunct))]);
        break;
      }
      case 17: case 18: s += kSpecial[pick(std::size(kSpecial))]; break;
      case 19: s += kCode[pick(std::size(kCode))]; break;
      case 20: put(s, range('a', 'z')); run(s, 0x0300, 0x036F, 3); break;        // combining marks
      case 21: {                                                                 // controls, oddities
        static const uint32_t kOdd[] = {0x0, 0x1, 0x1B, 0x7F, 0x80, 0x9F, 0xAD, 0x034F, 0x2060, 0xE000,
                                        0xF8FF, 0xFFFD, 0xFFFC, 0x10FFFD, 0xE0041, 0x0100, 0x0120, 0x0143};
        put(s, kOdd[pick(std::size(kOdd))]);
        break;
      }
    }
  }

  std::mt19937_64 rng_;
};

std::vector<std::string> read_lines(const std::string& path) {
  std::string all = read_file(path);
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < all.size()) {
    size_t nl = all.find('\n', pos);
    if (nl == std::string::npos) nl = all.size();
    if (nl > pos) out.push_back(all.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return out;
}

void run_oracle(const std::string& mode, const std::string& tokenizer, const std::string& in, const std::string& out) {
  std::string cmd = "node '" + kOracle + "' " + mode + " '" + tokenizer + "' '" + in + "' '" + out + "'";
  int rc = std::system(cmd.c_str());
  ASSERT_EQ(rc, 0) << "the HF tokenizers oracle did not run (" << cmd
                   << "). Install it with `bash scripts/setup.sh` (runs `npm ci` in tests/oracle).";
}

TEST(TokenizerOracle, RandomStringsEncodeLikeHF) {
  Tokenizer t = Tokenizer::load(kTokenizerPath);
  TextGen gen(20261129);
  const int kStrings = 4000;
  std::vector<std::string> texts;
  std::string in;
  for (int i = 0; i < kStrings; ++i) {
    texts.push_back(gen.text());
    in += nlohmann::json{{"text", texts.back()}, {"parse_special", i % 2 == 0}}.dump() + "\n";
  }
  std::string dir = ::testing::TempDir();
  std::string in_path = dir + "/tok_oracle_in.jsonl", out_path = dir + "/tok_oracle_out.jsonl";
  write_file_atomic(in_path, in);
  run_oracle("encode", kTokenizerPath, in_path, out_path);
  std::vector<std::string> lines = read_lines(out_path);
  ASSERT_EQ(lines.size(), size_t(kStrings));
  int diffs = 0;
  for (int i = 0; i < kStrings; ++i) {
    std::vector<int32_t> want = nlohmann::json::parse(lines[size_t(i)]).get<std::vector<int32_t>>();
    std::vector<int32_t> got = t.encode(texts[size_t(i)], i % 2 == 0);
    if (got != want && ++diffs <= 10)
      ADD_FAILURE() << "string " << i << " " << nlohmann::json(texts[size_t(i)]).dump()
                    << " parse_special=" << (i % 2 == 0) << "\n want " << nlohmann::json(want).dump() << "\n got  "
                    << nlohmann::json(got).dump();
  }
  EXPECT_EQ(diffs, 0) << "of " << kStrings << " strings";
  std::printf("cross-checked %d strings against HF tokenizers: %d differences\n", kStrings, diffs);
}

TEST(TokenizerOracle, RandomIdsDecodeLikeHF) {
  Tokenizer t = Tokenizer::load(kTokenizerPath);
  std::mt19937_64 rng(7);
  const int kSeqs = 1000;
  std::vector<std::vector<int32_t>> seqs;
  std::string in;
  for (int i = 0; i < kSeqs; ++i) {
    std::vector<int32_t> ids;
    int n = 1 + int(rng() % 12);
    for (int k = 0; k < n; ++k) {
      // Mostly ordinary tokens, some added tokens, some single-byte tokens (split UTF-8).
      uint64_t r = rng() % 10;
      int32_t id = r < 6 ? int32_t(rng() % 128000) : r < 8 ? int32_t(128000 + rng() % 1280) : int32_t(rng() % 256);
      ids.push_back(id);
    }
    seqs.push_back(ids);
    in += nlohmann::json{{"ids", ids}, {"skip_special", i % 2 == 1}}.dump() + "\n";
  }
  std::string dir = ::testing::TempDir();
  std::string in_path = dir + "/tok_oracle_din.jsonl", out_path = dir + "/tok_oracle_dout.jsonl";
  write_file_atomic(in_path, in);
  run_oracle("decode", kTokenizerPath, in_path, out_path);
  std::vector<std::string> lines = read_lines(out_path);
  ASSERT_EQ(lines.size(), size_t(kSeqs));
  int diffs = 0;
  for (int i = 0; i < kSeqs; ++i) {
    std::string want = nlohmann::json::parse(lines[size_t(i)]).get<std::string>();
    std::string got = t.decode(seqs[size_t(i)], i % 2 == 1);
    StreamDecoder sd(t, i % 2 == 1);
    std::string streamed;
    for (int32_t id : seqs[size_t(i)]) streamed += sd.push(id);
    streamed += sd.flush();
    if ((got != want || streamed != want) && ++diffs <= 10)
      ADD_FAILURE() << "ids " << nlohmann::json(seqs[size_t(i)]).dump() << "\n want " << nlohmann::json(want).dump()
                    << "\n got  " << nlohmann::json(got).dump() << "\n streamed " << nlohmann::json(streamed).dump();
  }
  EXPECT_EQ(diffs, 0) << "of " << kSeqs << " sequences";
}

}  // namespace
}  // namespace dsv4
