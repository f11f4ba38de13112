// Shared by the BPE training tests: a deterministic corpus and mixed test strings.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace dsv4::train_test {

inline void put_cp(std::string& s, uint32_t cp) {
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

// Seeded documents mixing English words, code, numbers, CJK, Cyrillic, accents and emoji.
// Code points are limited to Unicode 14 assignments (what PCRE2 and the oracle agree on).
inline std::vector<std::string> corpus(uint64_t seed, int docs) {
  static const char* const kWords[] = {"the", "model", "token", "tokenizer", "train", "training", "data",
                                       "attention", "expert", "layer", "weight", "of", "and", "to", "in",
                                       "is", "a", "with", "for", "that", "The", "Muon", "sparse", "hello",
                                       "world", "don't", "it's", "we're", "naïve", "café", "résumé"};
  static const char* const kCode[] = {"def f(x):\n    return x + 1\n", "for (int i = 0; i < n; ++i) {}\n",
                                      "{\"a\": [1, 2.5]}", "x = y // 2", "#include <vector>\n"};
  std::mt19937_64 rng(seed);
  auto pick = [&](uint32_t n) { return uint32_t(rng() % n); };
  std::vector<std::string> out;
  for (int d = 0; d < docs; ++d) {
    std::string s;
    int n = 20 + int(pick(60));
    for (int i = 0; i < n; ++i) {
      uint32_t r = pick(40);
      if (i > 0 && r < 36) s += (pick(12) == 0 ? "\n" : " ");
      if (r < 30) {
        s += kWords[pick(std::size(kWords))];
        if (pick(8) == 0) s += pick(2) ? "." : ",";
      } else if (r < 32) {
        s += std::to_string(pick(100000));
      } else if (r < 34) {
        s += kCode[pick(std::size(kCode))];
      } else if (r < 36) {
        for (int k = 0, m = 1 + int(pick(4)); k < m; ++k) put_cp(s, 0x4E00 + pick(40));  // CJK
      } else if (r < 38) {
        for (int k = 0, m = 2 + int(pick(5)); k < m; ++k) put_cp(s, 0x0430 + pick(32));  // Cyrillic
      } else {
        put_cp(s, 0x1F600 + pick(16));  // emoji
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

// Strings for round trips and the oracle: unseen scripts, whitespace runs, added-token text.
inline std::vector<std::string> probe_strings() {
  std::vector<std::string> v = {
      "Hello, world! The model is training.",
      "  leading and trailing spaces  ",
      "tabs\tand\nnewlines\r\n\n  indented",
      "numbers 1234567 and 3.14159, 2026-12-06",
      "日本語のテキストと中文混合",
      "Привет, мир! Ελληνικά. עברית. العربية",
      "emoji 😀👍🏽 🇫🇷 ❤️ 👨‍👩‍👧",
      "naïve café résumé Ångström",
      "def f(x):\n    return {\"k\": [1, 2]}\n",
      "<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜><think>ok</think>answer<｜end▁of▁sentence｜>",
      "<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">",
      "not quite <｜User and <think and ｜ alone",
      "",
      "x",
      "\u3000\u00a0\u2028 odd spaces",
  };
  std::mt19937_64 rng(7);
  for (int i = 0; i < 40; ++i) {
    std::string s;
    for (int k = 0, n = 1 + int(rng() % 12); k < n; ++k) {
      static const uint32_t kRanges[][2] = {{0x20, 0x7E}, {0xC0, 0x17F}, {0x4E00, 0x4EFF}, {0x3041, 0x3096},
                                            {0x0410, 0x044F}, {0x1F600, 0x1F64F}, {0x0621, 0x064A}};
      const auto& r = kRanges[rng() % std::size(kRanges)];
      for (int j = 0, m = 1 + int(rng() % 6); j < m; ++j) put_cp(s, r[0] + uint32_t(rng() % (r[1] - r[0] + 1)));
      if (rng() % 3 == 0) s += ' ';
    }
    v.push_back(std::move(s));
  }
  return v;
}

}  // namespace dsv4::train_test
