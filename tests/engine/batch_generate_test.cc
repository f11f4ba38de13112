// Batched generation on the tiny-a golden checkpoint: every sequence of a batch equals the same
// prompt generated alone with a plain prefill + step loop (greedy and seeded sampling), whatever
// the batch composition, concurrency and chunking; stop tokens, max_tokens, EOS; sampling
// logprobs; errors name the prompt.
#include <gtest/gtest.h>

#include <cmath>

#include "base/error.h"
#include "engine/batch_generate.h"
#include "engine/session.h"
#include "model/weights.h"

using namespace dsv4;

namespace {

std::shared_ptr<const ModelWeights> tiny_a() {
  static auto w = load_model(std::string(DSV4_TEST_DATA_DIR) + "/tiny-a/checkpoint");
  return w;
}

struct Ref {
  std::vector<int64_t> tokens;
  std::vector<float> model_logprobs;
  std::vector<float> logprobs;
};

// The generate() loop without the text path: one session, prefill, sample, step.
Ref one_by_one(const BatchPrompt& p) {
  SessionOptions so;
  Session s(tiny_a(), so);
  std::span<const float> logits = s.prefill(p.tokens).logits;
  SamplingParams sp = p.sampling;
  sp.logprobs = true;
  Sampler sampler(s.vocab_size(), sp);
  Ref r;
  for (int64_t i = 0; i < p.max_tokens; ++i) {
    std::vector<float> l(logits.begin(), logits.end());
    const SampleResult res = sampler.sample(l, nullptr);
    r.tokens.push_back(res.token);
    r.model_logprobs.push_back(res.logprob);
    // Expected sampling logprob from first principles: log-softmax of logits / T (no truncation).
    if (sp.temperature < kGreedyTemperature) {
      r.logprobs.push_back(0.0f);
    } else {
      double m = -1e30;
      for (float x : l) m = std::max(m, static_cast<double>(x) / sp.temperature);
      double z = 0;
      for (float x : l) z += std::exp(static_cast<double>(x) / sp.temperature - m);
      r.logprobs.push_back(static_cast<float>(static_cast<double>(l[static_cast<size_t>(res.token)]) / sp.temperature - m - std::log(z)));
    }
    if (std::find(p.stop_tokens.begin(), p.stop_tokens.end(), res.token) != p.stop_tokens.end()) break;
    if (res.token == tiny_a()->config.eos_token_id && !p.ignore_eos) break;
    logits = s.step(res.token);
  }
  return r;
}

std::vector<BatchPrompt> prompts(float temperature) {
  std::vector<BatchPrompt> ps;
  const int lens[] = {1, 7, 40, 3, 97, 12};
  for (int i = 0; i < 6; ++i) {
    BatchPrompt p;
    for (int j = 0; j < lens[i]; ++j) p.tokens.push_back(2 + (j * 37 + i * 11) % 500);
    p.sampling.temperature = temperature;
    p.sampling.seed = 100 + static_cast<uint64_t>(i);
    p.max_tokens = 6 + i;
    p.ignore_eos = true;
    ps.push_back(p);
  }
  return ps;
}

void expect_matches(const std::vector<BatchPrompt>& ps, const BatchGenerateOptions& o) {
  const std::vector<BatchCompletion> got = batch_generate(tiny_a(), ps, o);
  ASSERT_EQ(got.size(), ps.size());
  for (size_t i = 0; i < ps.size(); ++i) {
    SCOPED_TRACE("prompt " + std::to_string(i));
    const Ref ref = one_by_one(ps[i]);
    EXPECT_EQ(got[i].tokens, ref.tokens);
    EXPECT_EQ(got[i].model_logprobs, ref.model_logprobs);  // bitwise: batch-invariant forward
    ASSERT_EQ(got[i].logprobs.size(), ref.logprobs.size());
    for (size_t j = 0; j < ref.logprobs.size(); ++j) EXPECT_NEAR(got[i].logprobs[j], ref.logprobs[j], 1e-4) << j;
    EXPECT_EQ(got[i].finish, FinishReason::kLength);
  }
}

TEST(BatchGenerate, GreedyEqualsOneByOne) {
  BatchGenerateOptions o;
  o.max_sequences = 4;  // more prompts than slots: sequences join as others finish
  o.prefill_chunk = 16;
  o.max_batch_tokens = 30;
  expect_matches(prompts(0.0f), o);
}

TEST(BatchGenerate, SeededSamplingIndependentOfBatchComposition) {
  const auto ps = prompts(0.9f);
  BatchGenerateOptions all;
  all.max_sequences = 6;
  expect_matches(ps, all);
  BatchGenerateOptions single;  // one at a time, tiny chunks
  single.max_sequences = 1;
  single.prefill_chunk = 5;
  expect_matches(ps, single);
}

TEST(BatchGenerate, StopTokensAndZeroMaxTokens) {
  auto ps = prompts(0.0f);
  const Ref ref = one_by_one(ps[2]);
  ASSERT_GE(ref.tokens.size(), 4u);
  ps[2].stop_tokens = {511, ref.tokens[3]};
  ps[2].max_tokens = 50;
  // The first occurrence of the stop token ends it (the stop token included).
  const auto first = std::find(ref.tokens.begin(), ref.tokens.end(), ref.tokens[3]) - ref.tokens.begin();
  ps[3].max_tokens = 0;
  BatchGenerateOptions o;
  o.max_sequences = 3;
  auto got = batch_generate(tiny_a(), ps, o);
  EXPECT_EQ(got[2].finish, FinishReason::kStop);
  EXPECT_EQ(got[2].stop_index, ref.tokens[3] == 511 ? 0 : 1);
  EXPECT_EQ(got[2].tokens, std::vector<int64_t>(ref.tokens.begin(), ref.tokens.begin() + first + 1));
  EXPECT_EQ(got[3].finish, FinishReason::kLength);
  EXPECT_TRUE(got[3].tokens.empty());
  EXPECT_EQ(got[4].tokens, one_by_one(ps[4]).tokens);
}

TEST(BatchGenerate, EosEndsASequence) {
  // A random model rarely writes EOS greedily: sample near-uniformly (T = 50 over 512 ids)
  // with 64 fixed seeds x 24 tokens; P(no EOS at all) = (511/512)^1536 ~ 5%, and the seeds are
  // fixed, so the outcome is deterministic. Each sequence that writes EOS stops right there.
  std::vector<BatchPrompt> ps;
  for (int i = 0; i < 64; ++i) {
    BatchPrompt p;
    p.tokens = {5, 6, 7};
    p.sampling.temperature = 50.0f;
    p.sampling.seed = static_cast<uint64_t>(i);
    p.max_tokens = 24;
    ps.push_back(p);
  }
  BatchGenerateOptions o;
  o.max_sequences = 64;
  auto got = batch_generate(tiny_a(), ps, o);
  const int64_t eos = tiny_a()->config.eos_token_id;
  int eos_seen = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const auto& c = got[i];
    const bool ends_eos = !c.tokens.empty() && c.tokens.back() == eos;
    EXPECT_EQ(c.finish == FinishReason::kEos, ends_eos) << i;
    if (ends_eos) ++eos_seen;
    else EXPECT_EQ(c.tokens.size(), 24u) << i;
    for (size_t j = 0; j + 1 < c.tokens.size(); ++j) EXPECT_NE(c.tokens[j], eos) << i;
  }
  EXPECT_GT(eos_seen, 0);
}

TEST(BatchGenerate, ErrorsNameThePrompt) {
  auto ps = prompts(0.0f);
  ps[3].tokens[1] = 512;
  try {
    batch_generate(tiny_a(), ps);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("prompt 3"), std::string::npos) << e.what();
  }
  ps = prompts(0.0f);
  ps[1].tokens.clear();
  EXPECT_THROW(batch_generate(tiny_a(), ps), Error);
  ps = prompts(0.0f);
  ps[5].sampling.top_p = 0.0f;
  try {
    batch_generate(tiny_a(), ps);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("prompt 5"), std::string::npos) << e.what();
  }
}

}  // namespace
