// Generation loop tests on a `tiny` random model with the real V4 tokenizer and chat format:
// seeds reproduce, stop strings that span tokens, max tokens, multi-turn prefix reuse in
// thinking mode, and the parser fed from the stream.
#include <gtest/gtest.h>

#include "base/error.h"
#include "engine/generate.h"
#include "text/chat_encoder.h"
#include "tiny_model.h"

using namespace dsv4;

namespace {

struct Fixture {
  std::shared_ptr<const ModelWeights> w;
  std::unique_ptr<Tokenizer> tok;
};

const Fixture& fx() {
  static Fixture f = [] {
    Fixture x;
    const std::string dir = test::tiny_chat_model_dir();
    x.w = load_model(dir);
    x.tok = std::make_unique<Tokenizer>(Tokenizer::load(dir + "/tokenizer.json"));
    return x;
  }();
  return f;
}

std::vector<int64_t> render(const chat::Json& messages, chat::ThinkingMode mode) {
  chat::EncodeOptions eo;
  eo.thinking_mode = mode;
  std::string p = chat::encode_messages(messages, eo);
  auto ids = fx().tok->encode(p, true);
  return std::vector<int64_t>(ids.begin(), ids.end());
}

chat::Json user(const std::string& text) { return chat::Json{{"role", "user"}, {"content", text}}; }

GenerateParams sampled(uint64_t seed, int64_t n) {
  GenerateParams p;
  p.sampling.temperature = 1.0f;
  p.sampling.seed = seed;
  p.max_tokens = n;
  return p;
}

}  // namespace

TEST(Generate, SeedsReproduceRuns) {
  auto prompt = render(chat::Json::array({user("Tell me a story.")}), chat::ThinkingMode::Thinking);
  Session a(fx().w, {}), b(fx().w, {}), c(fx().w, {});
  auto ra = generate(a, *fx().tok, prompt, sampled(7, 24));
  auto rb = generate(b, *fx().tok, prompt, sampled(7, 24));
  auto rc = generate(c, *fx().tok, prompt, sampled(8, 24));
  EXPECT_EQ(ra.tokens, rb.tokens);
  EXPECT_EQ(ra.text, rb.text);
  EXPECT_NE(ra.tokens, rc.tokens);
  EXPECT_EQ(ra.stats.generated_tokens, static_cast<int64_t>(ra.tokens.size()));
  if (ra.finish != FinishReason::kEos) {
    EXPECT_EQ(ra.finish, FinishReason::kLength);
    EXPECT_EQ(ra.tokens.size(), 24u);
  }
}

TEST(Generate, StopStringSpanningTokens) {
  auto prompt = render(chat::Json::array({user("Count to ten.")}), chat::ThinkingMode::Chat);
  Session s(fx().w, {});
  GenerateParams greedy;
  greedy.sampling.temperature = 0.0f;
  greedy.max_tokens = 40;
  greedy.mode = chat::ThinkingMode::Chat;
  greedy.ignore_eos = true;
  auto base = generate(s, *fx().tok, prompt, greedy);
  ASSERT_GE(base.tokens.size(), 6u);
  // A stop string made of the end of one token's text and the start of the next one's.
  std::string before, stop;
  for (size_t i = 2; i + 1 < base.tokens.size() && stop.empty(); ++i) {
    std::string a = fx().tok->decode({base.tokens[i]}), b = fx().tok->decode({base.tokens[i + 1]});
    if (a.size() < 2 || b.size() < 2 || (a.back() & 0x80) || (b[0] & 0x80) || (b[1] & 0x80)) continue;
    std::string cand = a.substr(a.size() - 1) + b.substr(0, 2);
    std::string prefix = fx().tok->decode(std::vector<int32_t>(base.tokens.begin(), base.tokens.begin() + i + 1));
    prefix.pop_back();
    if (prefix.find(cand) != std::string::npos || cand.find('<') != std::string::npos) continue;  // must first occur here
    stop = cand;
    before = prefix;
  }
  ASSERT_FALSE(stop.empty()) << "no suitable token boundary in: " << base.text;
  GenerateParams p = greedy;
  p.stop = {"never-appears-xyz", stop};
  Session s2(fx().w, {});
  auto r = generate(s2, *fx().tok, prompt, p);
  EXPECT_EQ(r.finish, FinishReason::kStop);
  EXPECT_EQ(r.stop_index, 1);
  EXPECT_EQ(r.text, before);
  EXPECT_EQ(r.message.content, before);  // chat mode: all text is content
}

TEST(Generate, MaxTokensAndCallbacks) {
  auto prompt = render(chat::Json::array({user("Hi")}), chat::ThinkingMode::Thinking);
  Session s(fx().w, {});
  GenerateParams p = sampled(3, 12);
  p.ignore_eos = true;
  std::string streamed_reasoning, streamed_content;
  int done = 0, tokens = 0;
  GenerateCallbacks cb;
  cb.on_delta = [&](const chat::StreamDelta& d) {
    if (d.kind == chat::StreamDelta::Kind::Reasoning) streamed_reasoning += d.text;
    if (d.kind == chat::StreamDelta::Kind::Content) streamed_content += d.text;
    if (d.kind == chat::StreamDelta::Kind::Done) ++done;
  };
  cb.on_token = [&](int32_t, const SampleResult&) { ++tokens; };
  auto r = generate(s, *fx().tok, prompt, p, cb);
  EXPECT_EQ(r.finish, FinishReason::kLength);
  EXPECT_EQ(r.stats.generated_tokens, 12);
  EXPECT_EQ(tokens, 12);
  EXPECT_EQ(done, 1);
  EXPECT_EQ(streamed_reasoning, r.message.reasoning_content);
  EXPECT_EQ(streamed_content, r.message.content);
  // Cancellation: should_stop is honoured before the first decode step.
  Session s2(fx().w, {});
  GenerateCallbacks stop_now;
  stop_now.should_stop = [] { return true; };
  auto c = generate(s2, *fx().tok, prompt, p, stop_now);
  EXPECT_EQ(c.finish, FinishReason::kCancelled);
  EXPECT_EQ(c.stats.generated_tokens, 0);
}

TEST(Generate, MultiTurnThinkingReusesTheCommonPrefix) {
  SessionOptions so;
  so.rewind_horizon = 16;  // smaller than a turn: the checkpoint must serve the rewind
  Session s(fx().w, so);
  chat::Json messages = chat::Json::array({user("What is the capital of France?")});
  auto p1 = render(messages, chat::ThinkingMode::Thinking);
  GenerateParams p = sampled(11, 48);
  p.ignore_eos = true;
  auto r1 = generate(s, *fx().tok, p1, p);
  EXPECT_EQ(r1.stats.cached_tokens, 0);
  EXPECT_EQ(r1.stats.prompt_tokens, static_cast<int64_t>(p1.size()));
  // Turn 2: the earlier reasoning is dropped from the prompt (drop_thinking), so the prompt
  // diverges from the session right after the first turn's prompt.
  messages.push_back(chat::Json{{"role", "assistant"}, {"content", r1.message.content}, {"reasoning_content", r1.message.reasoning_content}});
  messages.push_back(user("And of Germany?"));
  auto p2 = render(messages, chat::ThinkingMode::Thinking);
  const std::vector<int64_t> before = s.tokens();
  size_t lcp = 0;
  while (lcp < before.size() && lcp + 1 < p2.size() && before[lcp] == p2[lcp]) ++lcp;
  ASSERT_GE(lcp + 2, p1.size()) << "turn 2 should share (almost) all of turn 1's prompt";
  auto r2 = generate(s, *fx().tok, p2, p);
  EXPECT_EQ(r2.stats.cached_tokens, static_cast<int64_t>(lcp));
  EXPECT_EQ(r2.stats.prompt_tokens, static_cast<int64_t>(p2.size()));
  // The reused state gives the same tokens as a fresh session.
  Session fresh(fx().w, so);
  auto r2f = generate(fresh, *fx().tok, p2, p);
  EXPECT_EQ(r2.tokens, r2f.tokens);
  EXPECT_EQ(r2f.stats.cached_tokens, 0);
}

TEST(Generate, TokenizerLargerThanModelIsAnError) {
  // tiny-a has a 512-token vocabulary: the V4 tokenizer cannot drive it.
  auto small = load_model(std::string(DSV4_TEST_DATA_DIR) + "/tiny-a/checkpoint");
  Session s(small, {});
  std::vector<int64_t> prompt = {0, 1, 2};
  EXPECT_THROW(generate(s, *fx().tok, prompt, GenerateParams{}), Error);
}
