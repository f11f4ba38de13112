// BPE training: hand-computed merges, the file layout, loading and round trips in dsv4's
// Tokenizer, special tokens, the CLI, and bad input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/file.h"
#include "text/tokenizer.h"
#include "text/tokenizer_internal.h"
#include "text/tokenizer_train.h"
#include "tokenizer_train_util.h"

namespace dsv4 {
namespace {

const std::string kTemplate = std::string(DSV4_ASSETS_DIR) + "/deepseek-v4-tokenizer.json.gz";
// The release: 3 added tokens in its model vocab (BOS, EOS, pad) and 1280 after it.
constexpr int32_t kInVocab = 3, kOutside = 1280, kMin = kInVocab + 256 + kOutside;

std::string scratch(const std::string& name) {
  return ::testing::TempDir() + "/dsv4_" + std::to_string(getpid()) + "_" + name;
}

Tokenizer load_json(const std::string& text, const std::string& name) {
  std::string path = scratch(name);
  write_file_atomic(path, text);
  Tokenizer t = Tokenizer::load(path);
  std::remove(path.c_str());
  return t;
}

// Worked by hand. Documents (each one pre-tokenized word): abc x5, abd x3, cd x4, xy x2, uv x2.
// Pair counts: ab 8, bc 5, cd 4, bd 3, xy 2, uv 2 -> merge "a b". Then (ab)c 5, cd 4, (ab)d 3 ->
// "ab c"; then cd 4 -> "c d"; then (ab)d 3 -> "ab d"; then uv and xy tie at 2: "u" < "x" first.
BpeTrainer hand_corpus() {
  BpeTrainer t(kTemplate);
  for (int i = 0; i < 5; ++i) t.add_text("abc");
  for (int i = 0; i < 3; ++i) t.add_text("abd");
  for (int i = 0; i < 4; ++i) t.add_text("cd");
  for (int i = 0; i < 2; ++i) t.add_text("xy");
  for (int i = 0; i < 2; ++i) t.add_text("uv");
  return t;
}

TEST(TokenizerTrain, PreTokenizeGivesTheWordsEncodeWouldMerge) {
  Tokenizer t = Tokenizer::load(kTemplate);
  std::vector<std::string> words;
  t.pre_tokenize("Hello world 123456<｜User｜>x", [&](std::string_view w) { words.emplace_back(w); });
  // Digits split in threes, the added token dropped, a trailing space its own word.
  EXPECT_EQ(words, (std::vector<std::string>{"Hello", " world", " ", "123", "456", "x"}));
  EXPECT_THROW(t.pre_tokenize(std::string("a\xc3", 2), [](std::string_view) {}), Error);
}

TEST(TokenizerTrain, HandComputedMergesAndLayout) {
  BpeTrainer tr = hand_corpus();
  EXPECT_EQ(tr.distinct_words(), 5u);
  BpeTrainResult r = tr.train(kMin + 100);  // more than the corpus can give: stops at 6 merges
  EXPECT_EQ(r.merges, 6);
  EXPECT_EQ(r.model_vocab, kInVocab + 256 + 6);
  EXPECT_EQ(r.vocab_size, kMin + 6);
  EXPECT_EQ(r.added_tokens, kInVocab + kOutside);

  nlohmann::json j = nlohmann::json::parse(r.json);
  const std::vector<std::string> want = {"a b", "ab c", "c d", "ab d", "u v", "x y"};
  ASSERT_EQ(j["model"]["merges"].size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(j["model"]["merges"][i], want[i]) << i;
  EXPECT_EQ(j["model"]["type"], "BPE");
  EXPECT_EQ(j["model"]["vocab"].size(), size_t(r.model_vocab));
  // Release layout: BOS/EOS/pad at 0..2, bytes from 3 in byte-level order ('!' first), merges
  // after the bytes, the other added tokens after the model vocab.
  EXPECT_EQ(j["model"]["vocab"]["<｜begin▁of▁sentence｜>"], 0);
  EXPECT_EQ(j["model"]["vocab"]["<｜▁pad▁｜>"], 2);
  EXPECT_EQ(j["model"]["vocab"]["!"], 3);
  EXPECT_EQ(j["model"]["vocab"]["Ġ"], 223);  // the space byte: 221st in GPT-2's order
  EXPECT_EQ(j["model"]["vocab"]["ab"], 259);
  EXPECT_EQ(j["model"]["vocab"]["xy"], 264);
  EXPECT_EQ(j["added_tokens"][3]["content"], "<｜place▁holder▁no▁0｜>");
  EXPECT_EQ(j["added_tokens"][3]["id"], r.model_vocab);
  // The template's parts are copied unchanged.
  nlohmann::json tmpl = nlohmann::json::parse(text_detail::read_tokenizer_text(kTemplate));
  // Every byte token has the release's id.
  for (const auto& [k, v] : tmpl["model"]["vocab"].items()) {
    if (v.get<int>() >= 3 && v.get<int>() < 259) {
      EXPECT_EQ(j["model"]["vocab"][k], v) << k;
    }
  }
  for (const char* k : {"pre_tokenizer", "normalizer", "decoder", "post_processor"}) EXPECT_EQ(j[k], tmpl[k]) << k;
  ASSERT_EQ(j["added_tokens"].size(), tmpl["added_tokens"].size());
  for (size_t i = 0; i < tmpl["added_tokens"].size(); ++i) {
    nlohmann::json a = tmpl["added_tokens"][i], b = j["added_tokens"][i];
    a.erase("id");
    b.erase("id");
    EXPECT_EQ(a, b) << i;
  }

  // Fewer ids requested: exactly the first merges.
  BpeTrainResult r3 = tr.train(kMin + 3);
  nlohmann::json j3 = nlohmann::json::parse(r3.json);
  EXPECT_EQ(r3.merges, 3);
  EXPECT_EQ(r3.vocab_size, kMin + 3);
  EXPECT_EQ(j3["model"]["merges"], nlohmann::json({"a b", "ab c", "c d"}));

  Tokenizer t = load_json(r.json, "hand.json");
  EXPECT_EQ(t.vocab_size(), kMin + 6);
  EXPECT_EQ(t.encode("abc"), (std::vector<int32_t>{3 + 256 + 1}));
  EXPECT_EQ(t.encode("abd"), (std::vector<int32_t>{3 + 256 + 3}));
}

TEST(TokenizerTrain, TrainedFileLoadsRoundTripsAndKeepsSpecialTokens) {
  BpeTrainer tr(kTemplate);
  std::vector<std::string> docs = train_test::corpus(1, 300);
  size_t corpus_bytes = 0;
  for (const std::string& d : docs) {
    tr.add_text(d);
    corpus_bytes += d.size();
  }
  const int32_t vocab = kMin + 600;
  BpeTrainResult r = tr.train(vocab);
  ASSERT_EQ(r.vocab_size, vocab) << "the corpus should have enough pairs";
  EXPECT_EQ(r.merges, 600);
  Tokenizer t = load_json(r.json, "trained.json");
  EXPECT_EQ(t.vocab_size(), vocab);

  // Round trips, including scripts and emoji never seen in training.
  for (const std::string& s : train_test::probe_strings()) {
    std::vector<int32_t> ids = t.encode(s);
    for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < vocab) << id;
    EXPECT_EQ(t.decode(ids), s);
  }
  // The merges compress the training text.
  size_t n_ids = 0;
  for (const std::string& d : docs) n_ids += t.encode(d).size();
  EXPECT_LT(double(n_ids), 0.5 * double(corpus_bytes));

  // Every added token of the release encodes as one id, with the same special flag.
  Tokenizer release = Tokenizer::load(kTemplate);
  for (const char* s : {"<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<think>",
                        "</think>", "｜DSML｜", "<｜tool▁calls▁begin｜>", "<|EOT|>", "<｜latest_reminder｜>",
                        "<｜place▁holder▁no▁7｜>", "<|place_holder_mm_span_0021|>", "<｜image｜>"}) {
    std::vector<int32_t> ids = t.encode(s);
    ASSERT_EQ(ids.size(), 1u) << s;
    EXPECT_EQ(ids[0], t.token_id(s)) << s;
    EXPECT_EQ(t.is_special(ids[0]), release.is_special(release.token_id(s))) << s;
  }
  std::vector<int32_t> chat = t.encode("<｜begin▁of▁sentence｜><｜User｜>hello<｜Assistant｜></think>");
  ASSERT_GE(chat.size(), 5u);
  EXPECT_EQ(chat.front(), 0);
  EXPECT_EQ(chat[1], t.token_id("<｜User｜>"));
  EXPECT_EQ(chat.back(), t.token_id("</think>"));
  EXPECT_EQ(t.decode(chat, true), "<｜User｜>hello<｜Assistant｜></think>");

  // Deterministic: the same corpus added in another order gives the same file.
  BpeTrainer tr2(kTemplate);
  for (size_t i = docs.size(); i-- > 0;) tr2.add_text(docs[i]);
  EXPECT_EQ(tr2.train(vocab).json, r.json);
}

TEST(TokenizerTrain, JsonlFilesAndBadInput) {
  std::string jl = scratch("corpus.jsonl"), txt = scratch("corpus.txt");
  write_file_atomic(jl, "{\"text\": \"abc\"}\n\n{\"text\": \"abc abd\", \"id\": 2}\n");
  write_file_atomic(txt, "abc");
  BpeTrainer tr(kTemplate);
  tr.add_file(jl);
  tr.add_file(txt);
  EXPECT_EQ(tr.distinct_words(), 2u);  // "abc", " abd"
  BpeTrainResult r = tr.train(kMin + 1);
  EXPECT_EQ(nlohmann::json::parse(r.json)["model"]["merges"], nlohmann::json({"a b"}));

  auto error_of = [&](auto&& f) -> std::string {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_NE(error_of([&] { tr.train(kMin - 1); }).find("too small"), std::string::npos);
  write_file_atomic(jl, "{\"text\": \"ok\"}\n{\"txt\": \"no\"}\n");
  EXPECT_NE(error_of([&] { tr.add_file(jl); }).find(jl + ":2"), std::string::npos);
  write_file_atomic(jl, "{\"text\": \"ok\"\n");
  EXPECT_NE(error_of([&] { tr.add_file(jl); }).find(jl + ":1: invalid JSON"), std::string::npos);
  write_file_atomic(txt, std::string("ab\xff", 3));
  EXPECT_NE(error_of([&] { tr.add_file(txt); }).find("not valid UTF-8"), std::string::npos);
  EXPECT_NE(error_of([&] { BpeTrainer bad(scratch("missing.json")); }).find("missing.json"), std::string::npos);
  std::remove(jl.c_str());
  std::remove(txt.c_str());
}

TEST(TokenizerTrain, Cli) {
  std::string txt = scratch("cli.txt"), out = scratch("cli_tok.json");
  std::string text;
  for (const std::string& d : train_test::corpus(3, 50)) text += d + "\n";
  write_file_atomic(txt, text);
  std::string cmd = std::string(DSV4_BIN) + " tokenizer train --vocab-size " + std::to_string(kMin + 50) + " --out '" +
                    out + "' '" + txt + "' 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  Tokenizer t = Tokenizer::load(out);
  EXPECT_EQ(t.vocab_size(), kMin + 50);
  EXPECT_EQ(t.decode(t.encode(text)), text);
  std::string bad = std::string(DSV4_BIN) + " tokenizer train --vocab-size 10 --out '" + out + "' '" + txt + "' 2>/dev/null";
  EXPECT_NE(std::system(bad.c_str()), 0);
  std::remove(txt.c_str());
  std::remove(out.c_str());
}

}  // namespace
}  // namespace dsv4
