// Token sampling: penalties, temperature, top-k, top-p, min-p, seeded draws, logprobs.
//
// Order of operations (as vLLM and llama.cpp's common chain apply them):
//   1. penalties on the raw logits: repetition (HF/CTRL: a positive logit is divided by the
//      penalty, a negative one multiplied) for every token seen in the prompt or the output,
//      then OpenAI frequency / presence: l -= frequency * count + presence * (count > 0),
//      where count is the number of times the token occurs in the *output* so far;
//   2. temperature < 1e-5 (kGreedyTemperature, vLLM's threshold; 0 is the usual way to ask):
//      greedy, the argmax of the penalised logits (ties: the lowest id);
//      steps 3-6 are skipped (they can never remove the argmax);
//   3. temperature: l /= T;
//   4. top-k: keep the k largest (ties at the boundary: lower ids first);
//   5. top-p (nucleus): sort by probability, keep the smallest prefix whose mass reaches p;
//   6. min-p: drop tokens whose probability is below min_p * (largest probability);
//   7. draw from the renormalised remainder with the sampler's own generator.
// Logprobs (chosen token and top-n alternatives) are the log-softmax of the *unmodified*
// logits, i.e. the model's own distribution before penalties, temperature and truncation
// (what OpenAI reports, and vLLM's default "raw_logprobs").
//
// No allocation per call: every buffer is sized to the vocabulary at construction.
// Reproducibility: draws use xoshiro256** seeded through splitmix64 and walk the kept tokens in
// id order, so a seed gives the same tokens on every run; across platforms too, except where a
// math library's expf differs in its last bit right at a draw's boundary.
#pragma once
#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "base/random.h"

namespace dsv4 {

struct SamplingParams {
  float temperature = 1.0f;         // 0 (or < kGreedyTemperature): greedy. Must be >= 0.
  int32_t top_k = 0;                // <= 0: off; otherwise keep the k most likely tokens
  float top_p = 1.0f;               // 1: off; in (0, 1]
  float min_p = 0.0f;               // 0: off; in [0, 1]
  float repetition_penalty = 1.0f;  // 1: off; > 0 (HF/CTRL)
  float presence_penalty = 0.0f;    // 0: off; in [-2, 2] (OpenAI)
  float frequency_penalty = 0.0f;   // 0: off; in [-2, 2] (OpenAI)
  uint64_t seed = 0;
  bool logprobs = false;            // report the chosen token's logprob (implied by top_logprobs > 0)
  int32_t top_logprobs = 0;         // alternatives to report, 0..kMaxTopLogprobs
};

inline constexpr int kMaxTopLogprobs = 20;  // OpenAI's limit
// Below this temperature sampling is greedy: l / T would overflow float for tiny T.
inline constexpr float kGreedyTemperature = 1e-5f;

// Throws Error naming the first out-of-range field.
void validate(const SamplingParams& p);

// The tokens the penalties look at: which ids occur in the prompt, and how often each id
// occurs in the generated output. Updating is O(1); clear() is O(distinct ids seen).
class TokenHistory {
 public:
  explicit TokenHistory(int64_t vocab_size);
  void add_prompt(std::span<const int32_t> tokens);
  void add_output(int32_t token);
  void clear();
  int32_t output_count(int32_t token) const { return out_count_[static_cast<size_t>(token)]; }
  bool in_prompt(int32_t token) const { return in_prompt_[static_cast<size_t>(token)] != 0; }
  // Distinct ids seen in the prompt or the output, in order of first appearance.
  std::span<const int32_t> seen() const { return seen_; }
  int64_t vocab_size() const { return static_cast<int64_t>(out_count_.size()); }

 private:
  void mark(int32_t token);
  std::vector<int32_t> out_count_;
  std::vector<uint8_t> in_prompt_;
  std::vector<uint8_t> is_seen_;
  std::vector<int32_t> seen_;
};

struct TokenLogprob {
  int32_t token = -1;
  float logprob = 0.0f;
};

struct SampleResult {
  int32_t token = -1;
  float logprob = 0.0f;  // of the chosen token, unmodified logits
  int32_t n_top = 0;     // valid entries of `top`: the most likely tokens, descending, ties by id
  std::array<TokenLogprob, kMaxTopLogprobs> top{};
};

class Sampler {
 public:
  Sampler(int64_t vocab_size, const SamplingParams& params);  // validates params

  // Chooses the next token. `logits` has vocab_size entries (NaN counts as -inf, +inf as the
  // largest float; at least one must be > -inf); `history` may be null (no penalties).
  SampleResult sample(std::span<const float> logits, const TokenHistory* history);

  // The distribution step 7 would draw from (normalised, vocab_size entries, 0 for removed
  // tokens; one-hot for greedy). Valid until the next call. For tests and diagnostics.
  std::span<const float> distribution(std::span<const float> logits, const TokenHistory* history);

  // Speculative decoding (engine/speculative.h) draws with the sampler's own generator:
  // a uniform double in [0, 1) (53 random bits);
  double uniform();
  // a token from an unnormalised distribution (vocab_size entries >= 0, walked in id order as
  // step 7 walks them; -1 when every entry is 0);
  int32_t draw_from(std::span<const float> weights);
  // the SampleResult sample() returns for `token` chosen on `logits` (logprobs as asked).
  SampleResult result_for(std::span<const float> logits, int32_t token) const;
  // log of the probability step 7 gave `token` in the last sample() / distribution() call (the
  // sampling distribution after penalties, temperature and truncation; 0 for the greedy
  // choice, -inf for a removed token). What a policy-gradient trainer compares against.
  double sampling_logprob(int32_t token) const;
  // True when sampling is greedy (temperature below kGreedyTemperature).
  bool greedy() const { return params_.temperature < kGreedyTemperature; }

  // Applies step 1 in place.
  static void apply_penalties(const SamplingParams& p, const TokenHistory& history, std::span<float> logits);

  const SamplingParams& params() const { return params_; }
  void reseed(uint64_t seed);
  int64_t vocab_size() const { return vocab_; }

 private:
  void prepare(std::span<const float> logits, const TokenHistory* history);  // fills probs_, total_
  void top_p_filter(size_t n, double z);
  int32_t draw();
  void fill_logprobs(std::span<const float> logits, SampleResult& r) const;
  uint64_t next_u64();

  int64_t vocab_;
  SamplingParams params_;
  std::vector<float> work_;     // processed logits
  std::vector<float> probs_;    // unnormalised kept probabilities by id (0 = removed)
  std::vector<int32_t> order_;  // candidate ids (selection / sorting scratch)
  std::vector<double> hist_;    // top-p radix histogram (4096 buckets)
  double total_ = 0.0;
  int32_t greedy_ = -1;         // set when temperature == 0
  Xoshiro256 rng_;
};

}  // namespace dsv4
