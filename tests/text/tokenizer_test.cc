// Tokenizer: every golden case (encode + decode), API details, streaming decoding, CLI.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/file.h"
#include "text/tokenizer.h"

namespace dsv4 {
namespace {

const std::string kTokenizerPath = std::string(DSV4_ASSETS_DIR) + "/deepseek-v4-tokenizer.json.gz";

const Tokenizer& tok() {
  static const Tokenizer t = Tokenizer::load(kTokenizerPath);
  return t;
}

// cases.jsonl must be split on '\n' only: some strings hold U+2028 / U+2029 / U+0085 raw.
std::vector<nlohmann::json> golden_cases() {
  std::string all = read_file(std::string(DSV4_TEST_DATA_DIR) + "/tokenizer/cases.jsonl");
  std::vector<nlohmann::json> out;
  size_t pos = 0;
  while (pos < all.size()) {
    size_t nl = all.find('\n', pos);
    if (nl == std::string::npos) nl = all.size();
    if (nl > pos) out.push_back(nlohmann::json::parse(all.substr(pos, nl - pos)));
    pos = nl + 1;
  }
  return out;
}

std::string ids_str(const std::vector<int32_t>& v) { return nlohmann::json(v).dump(); }

TEST(TokenizerGolden, EveryEncodeCase) {
  int n = 0, bad = 0;
  for (const auto& c : golden_cases()) {
    if (c["kind"] != "encode") continue;
    ++n;
    std::string text = c["text"];
    std::vector<int32_t> want = c["ids"].get<std::vector<int32_t>>();
    std::vector<int32_t> got = tok().encode(text, c["parse_special"].get<bool>());
    if (got != want) {
      ++bad;
      ADD_FAILURE() << c["id"].get<std::string>() << ": want " << ids_str(want) << "\n got " << ids_str(got);
    }
  }
  EXPECT_EQ(n, 320);
  EXPECT_EQ(bad, 0);
}

TEST(TokenizerGolden, EveryDecodeCase) {
  int n = 0;
  for (const auto& c : golden_cases()) {
    if (c["kind"] != "decode") continue;
    ++n;
    std::vector<int32_t> ids = c["ids"].get<std::vector<int32_t>>();
    bool skip = c["skip_special"].get<bool>();
    std::string want = c["text"];
    EXPECT_EQ(tok().decode(ids, skip), want) << c["id"].get<std::string>();
    // The streaming decoder must give the same text in total.
    StreamDecoder sd(tok(), skip);
    std::string streamed;
    for (int32_t id : ids) streamed += sd.push(id);
    streamed += sd.flush();
    EXPECT_EQ(streamed, want) << c["id"].get<std::string>() << " (streamed)";
  }
  EXPECT_EQ(n, 50);
}

// Encoding then decoding gives the text back for every golden encode case (byte-level BPE is
// lossless on valid UTF-8).
TEST(TokenizerGolden, RoundTrip) {
  for (const auto& c : golden_cases()) {
    if (c["kind"] != "encode") continue;
    std::string text = c["text"];
    EXPECT_EQ(tok().decode(tok().encode(text, c["parse_special"].get<bool>())), text) << c["id"].get<std::string>();
  }
}

TEST(Tokenizer, Api) {
  const Tokenizer& t = tok();
  EXPECT_EQ(t.vocab_size(), 129280);
  EXPECT_EQ(t.token_id("<｜User｜>"), 128803);
  EXPECT_EQ(t.token_id("<think>"), 128821);
  EXPECT_EQ(t.token_id("｜DSML｜"), 128825);
  EXPECT_EQ(t.token_id("Hello"), 19923);
  EXPECT_EQ(t.token_id("no such token"), -1);
  EXPECT_EQ(t.token_text(2058), "Ġworld");
  EXPECT_EQ(t.token_text(128803), "<｜User｜>");
  EXPECT_TRUE(t.is_special(0));
  EXPECT_TRUE(t.is_special(1));
  EXPECT_FALSE(t.is_special(128803));  // <｜User｜> is not flagged special
  EXPECT_FALSE(t.is_special(128821));  // <think> neither
  EXPECT_FALSE(t.is_special(19923));
  EXPECT_THROW(t.token_text(129280), Error);
  EXPECT_THROW(t.token_text(-1), Error);
  // The reference sequence from the spec (§1.2).
  std::vector<int32_t> want = {128803, 30594, 128804, 128821, 36101, 128822, 7624, 1};
  EXPECT_EQ(t.encode("<｜User｜>你好<｜Assistant｜><think>推理</think>答案<｜end▁of▁sentence｜>"), want);
  EXPECT_EQ(t.encode(""), std::vector<int32_t>{});
  // Special tokens are kept by default and dropped only when flagged special.
  EXPECT_EQ(t.decode({0, 19923, 1}), "<｜begin▁of▁sentence｜>Hello<｜end▁of▁sentence｜>");
  EXPECT_EQ(t.decode({0, 19923, 1}, true), "Hello");
  EXPECT_EQ(t.decode({128821, 19923, 128822}, true), "<think>Hello</think>");
}

TEST(Tokenizer, Errors) {
  const Tokenizer& t = tok();
  try {
    t.encode(std::string("ab\xff" "cd"));
    FAIL() << "no error for invalid UTF-8";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("byte offset 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(t.encode(std::string("\xed\xa0\x80")), Error);       // a surrogate
  EXPECT_THROW(t.encode(std::string("\xc0\x80")), Error);           // overlong NUL
  EXPECT_THROW(t.encode(std::string("\xf4\x90\x80\x80")), Error);   // above U+10FFFF
  EXPECT_THROW(t.encode(std::string("abc\xe4\xbd")), Error);        // truncated
  try {
    t.decode({1, 129280});
    FAIL() << "no error for an invalid id";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("129280"), std::string::npos) << e.what();
  }
  EXPECT_THROW(t.decode({-5}), Error);
  EXPECT_THROW(Tokenizer::load("/nonexistent/tokenizer.json"), Error);
}

TEST(Tokenizer, LoadErrorsNameTheFile) {
  std::string dir = ::testing::TempDir();
  std::string bad_json = dir + "/tok_bad.json";
  write_file_atomic(bad_json, "{ not json");
  try {
    Tokenizer::load(bad_json);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(bad_json), std::string::npos) << e.what();
  }
  std::string bad_gz = dir + "/tok_bad.json.gz";
  write_file_atomic(bad_gz, std::string("\x1f\x8b\x08\x00garbage", 12));
  try {
    Tokenizer::load(bad_gz);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(bad_gz), std::string::npos) << e.what();
  }
  std::string wrong = dir + "/tok_wrong.json";
  write_file_atomic(wrong, R"({"model": {"type": "Unigram"}, "pre_tokenizer": {"type": "ByteLevel"}})");
  EXPECT_THROW(Tokenizer::load(wrong), Error);
}

// A small hand-made tokenizer file exercises what the DeepSeek file does not: added-token
// flags (lstrip, rstrip, single_word), the normalized / raw passes, other Split behaviours,
// and a ByteLevel step with its own regex. Expected ids follow HF's documented rules.
TEST(Tokenizer, AddedTokenFlagsAndBehaviours) {
  nlohmann::json vocab = nlohmann::json::object();
  // All 256 byte tokens, ids 0..255 in byte order.
  auto bl = [](unsigned b) {
    bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    static unsigned next_map[256];
    static bool init = false;
    if (!init) {
      unsigned n = 256;
      for (unsigned i = 0; i < 256; ++i) {
        bool p = (i >= 0x21 && i <= 0x7E) || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE && i <= 0xFF);
        next_map[i] = p ? i : n++;
      }
      init = true;
    }
    unsigned cp = printable ? b : next_map[b];
    std::string s;
    if (cp < 0x80) s += char(cp);
    else {
      s += char(0xC0 | (cp >> 6));
      s += char(0x80 | (cp & 0x3F));
    }
    return s;
  };
  for (unsigned b = 0; b < 256; ++b) vocab[bl(b)] = int(b);
  vocab["ab"] = 256;
  vocab["Ġab"] = 257;
  vocab["Ġa"] = 258;
  nlohmann::json j = {
      {"model",
       {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"Ġ a", "a b", "Ġa b"}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", "Removed"}, {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}}}}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"added_tokens",
       {{{"id", 259}, {"content", "[L]"}, {"lstrip", true}, {"rstrip", false}, {"single_word", false}, {"normalized", false}, {"special", true}},
        {{"id", 260}, {"content", "[R]"}, {"lstrip", false}, {"rstrip", true}, {"single_word", false}, {"normalized", false}, {"special", false}},
        {{"id", 261}, {"content", "WW"}, {"lstrip", false}, {"rstrip", false}, {"single_word", true}, {"normalized", true}, {"special", false}}}}};
  std::string path = ::testing::TempDir() + "/tok_small.json";
  write_file_atomic(path, j.dump());
  Tokenizer t = Tokenizer::load(path);
  EXPECT_EQ(t.vocab_size(), 262);
  // add_prefix_space puts a space before every piece; '-' is removed by the Split.
  EXPECT_EQ(t.encode("ab-ab"), (std::vector<int32_t>{257, 257}));
  // lstrip eats the spaces before [L]; rstrip the spaces after [R].
  EXPECT_EQ(t.encode("ab  [L]ab"), (std::vector<int32_t>{257, 259, 257}));
  EXPECT_EQ(t.encode("ab[R]  ab"), (std::vector<int32_t>{257, 260, 257}));
  // single_word: WW alone is the token, inside a word it is not.
  EXPECT_EQ(t.encode("ab WW ab"), (std::vector<int32_t>{257, ' ', 261, 257}));
  EXPECT_EQ(t.encode("aWWb"), (std::vector<int32_t>{258, 'W', 'W', 'b'}));
  // parse_special off: no added token at all; " [" "L" "]" by the GPT-2 pattern.
  EXPECT_EQ(t.encode("[L]", false), (std::vector<int32_t>{' ', '[', 'L', ']'}));
  EXPECT_EQ(t.decode({259, 260}, true), "[R]");

  // HF re-numbers added tokens while loading; a file whose ids disagree is rejected.
  j["added_tokens"][2]["id"] = 300;
  write_file_atomic(path, j.dump());
  EXPECT_THROW(Tokenizer::load(path), Error);
}

TEST(StreamDecoder, HoldsSplitCharactersAndKeepsSpecialTokens) {
  const Tokenizer& t = tok();
  // 😀 is F0 9F 98 80; the byte tokens for its bytes arrive one at a time.
  const std::string bytes = "\xF0\x9F\x98\x80";
  std::vector<int32_t> ids;
  // Find the id of each single-byte token via the byte table (token_bytes of size 1).
  for (unsigned char c : bytes) {
    int32_t found = -1;
    for (int32_t id = 0; id < 256 * 4 && found < 0; ++id)
      if (t.token_bytes(id) == std::string(1, char(c))) found = id;
    ASSERT_GE(found, 0);
    ids.push_back(found);
  }
  StreamDecoder sd(t);
  EXPECT_EQ(sd.push(19923), "Hello");
  EXPECT_EQ(sd.push(ids[0]), "");
  EXPECT_EQ(sd.push(ids[1]), "");
  EXPECT_EQ(sd.push(ids[2]), "");
  EXPECT_EQ(sd.push(ids[3]), "😀");
  // An incomplete character followed by a special token: the held bytes become U+FFFD (they
  // can never complete), and the token itself is emitted whole.
  EXPECT_EQ(sd.push(ids[0]), "");
  EXPECT_EQ(sd.push(128822), "\xEF\xBF\xBD</think>");
  EXPECT_EQ(sd.push(1), "<｜end▁of▁sentence｜>");
  EXPECT_EQ(sd.push(ids[0]), "");
  EXPECT_EQ(sd.push(ids[1]), "");
  EXPECT_EQ(sd.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(sd.flush(), "");
  EXPECT_THROW(sd.push(999999), Error);

  // skip_special drops only tokens flagged special.
  StreamDecoder skip(t, true);
  EXPECT_EQ(skip.push(0), "");
  EXPECT_EQ(skip.push(128821), "<think>");
  EXPECT_EQ(skip.push(128825), "｜DSML｜");

  // Every multi-byte character of a mixed text, split across byte-level tokens: each push
  // returns only whole characters, and the total equals decode().
  std::string text = "Grüße 你好 👨‍👩‍👧 مرحبا नमस्ते 😀😀 ok";
  std::vector<int32_t> enc = t.encode(text);
  StreamDecoder s2(t);
  std::string total;
  for (int32_t id : enc) {
    std::string part = s2.push(id);
    // Whole characters only, so no replacement character can appear.
    EXPECT_EQ(part.find("\xEF\xBF\xBD"), std::string::npos) << "replacement char in " << part;
    total += part;
  }
  total += s2.flush();
  EXPECT_EQ(total, text);
}

// Runs `dsv4 ARGS` with `input` on stdin; returns stdout, sets *rc to the exit status.
std::string run_cli(const std::string& args, const std::string& input, int* rc) {
  std::string in_path = ::testing::TempDir() + "/tok_cli_in";
  write_file_atomic(in_path, input);
  std::string cmd = std::string(DSV4_BIN) + " " + args + " < '" + in_path + "' 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = pclose(p);
  *rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

TEST(TokenizerCli, TokenizeAndDetokenize) {
  std::string t = "--tokenizer '" + kTokenizerPath + "'";
  int rc = 0;
  EXPECT_EQ(run_cli("tokenize " + t, "Hello, world!<｜User｜>", &rc), "[19923,14,2058,3,128803]\n");
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(run_cli("tokenize " + t + " --no-special", "<｜User｜>", &rc),
            nlohmann::json(tok().encode("<｜User｜>", false)).dump() + "\n");
  EXPECT_EQ(run_cli("tokenize " + t, "", &rc), "[]\n");
  // Exact bytes out, no newline added; skip-special drops BOS/EOS only.
  EXPECT_EQ(run_cli("detokenize " + t, "[0, 19923, 201, 1]", &rc), "<｜begin▁of▁sentence｜>Hello\n<｜end▁of▁sentence｜>");
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(run_cli("detokenize " + t + " --skip-special", "[0, 19923, 128821, 1]", &rc), "Hello<think>");
  EXPECT_EQ(rc, 0);
  // Invalid input: exit 1.
  run_cli("tokenize " + t, "abc\xff", &rc);
  EXPECT_EQ(rc, 1);
  run_cli("detokenize " + t, "[1, 129280]", &rc);
  EXPECT_EQ(rc, 1);
  run_cli("detokenize " + t, "[1, \"x\"]", &rc);
  EXPECT_EQ(rc, 1);
  run_cli("detokenize " + t, "{\"a\": 1}", &rc);
  EXPECT_EQ(rc, 1);
  run_cli("detokenize " + t, "[1,", &rc);
  EXPECT_EQ(rc, 1);
  run_cli("tokenize --tokenizer /nonexistent.json", "x", &rc);
  EXPECT_EQ(rc, 1);
}

}  // namespace
}  // namespace dsv4
