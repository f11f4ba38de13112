#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "base/error.h"

namespace dsv4 {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

[[noreturn]] void bad(const std::string& field, const std::string& why) { throw Error("sampling parameter " + field + ": " + why); }

}  // namespace

void validate(const SamplingParams& p) {
  if (!std::isfinite(p.temperature) || p.temperature < 0) bad("temperature", "must be a finite number >= 0");
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) bad("top_p", "must be in (0, 1]");
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) bad("min_p", "must be in [0, 1]");
  if (!std::isfinite(p.repetition_penalty) || p.repetition_penalty <= 0) bad("repetition_penalty", "must be a finite number > 0");
  if (!(p.presence_penalty >= -2.0f && p.presence_penalty <= 2.0f)) bad("presence_penalty", "must be in [-2, 2]");
  if (!(p.frequency_penalty >= -2.0f && p.frequency_penalty <= 2.0f)) bad("frequency_penalty", "must be in [-2, 2]");
  if (p.top_logprobs < 0 || p.top_logprobs > kMaxTopLogprobs) bad("top_logprobs", "must be in [0, " + std::to_string(kMaxTopLogprobs) + "]");
}

// ------------------------------------------------------------------------------------------
// TokenHistory
// ------------------------------------------------------------------------------------------
TokenHistory::TokenHistory(int64_t vocab_size) {
  if (vocab_size <= 0) throw Error("TokenHistory: vocabulary size must be positive");
  out_count_.assign(static_cast<size_t>(vocab_size), 0);
  in_prompt_.assign(static_cast<size_t>(vocab_size), 0);
  is_seen_.assign(static_cast<size_t>(vocab_size), 0);
}

void TokenHistory::mark(int32_t t) {
  if (t < 0 || t >= vocab_size()) throw Error("token id " + std::to_string(t) + " outside the vocabulary [0, " + std::to_string(vocab_size()) + ")");
  if (!is_seen_[static_cast<size_t>(t)]) {
    is_seen_[static_cast<size_t>(t)] = 1;
    seen_.push_back(t);
  }
}

void TokenHistory::add_prompt(std::span<const int32_t> tokens) {
  for (int32_t t : tokens) {
    mark(t);
    in_prompt_[static_cast<size_t>(t)] = 1;
  }
}

void TokenHistory::add_output(int32_t t) {
  mark(t);
  ++out_count_[static_cast<size_t>(t)];
}

void TokenHistory::clear() {
  for (int32_t t : seen_) {
    out_count_[static_cast<size_t>(t)] = 0;
    in_prompt_[static_cast<size_t>(t)] = 0;
    is_seen_[static_cast<size_t>(t)] = 0;
  }
  seen_.clear();
}

// ------------------------------------------------------------------------------------------
// Sampler
// ------------------------------------------------------------------------------------------
Sampler::Sampler(int64_t vocab_size, const SamplingParams& params) : vocab_(vocab_size), params_(params) {
  if (vocab_size <= 0 || vocab_size > std::numeric_limits<int32_t>::max()) throw Error("Sampler: bad vocabulary size");
  validate(params);
  work_.resize(static_cast<size_t>(vocab_size));
  probs_.resize(static_cast<size_t>(vocab_size));
  order_.resize(static_cast<size_t>(vocab_size));
  hist_.resize(4096);
  reseed(params.seed);
}

void Sampler::reseed(uint64_t seed) { rng_.reseed(seed); }

uint64_t Sampler::next_u64() { return rng_.next(); }

void Sampler::apply_penalties(const SamplingParams& p, const TokenHistory& h, std::span<float> logits) {
  const bool rep = p.repetition_penalty != 1.0f;
  if (!rep && p.frequency_penalty == 0.0f && p.presence_penalty == 0.0f) return;
  for (int32_t t : h.seen()) {
    if (static_cast<size_t>(t) >= logits.size()) continue;
    float& x = logits[static_cast<size_t>(t)];
    // Every seen token occurs in the prompt or the output: the repetition penalty applies.
    if (rep) x = x > 0.0f ? x / p.repetition_penalty : x * p.repetition_penalty;
    const int32_t n = h.output_count(t);
    if (n > 0) x -= p.frequency_penalty * static_cast<float>(n) + p.presence_penalty;
  }
}

namespace {
uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
}  // namespace

// Nucleus: keep the smallest set of most likely tokens (descending probability, ties by lower
// id) whose mass reaches top_p. Instead of sorting up to the whole vocabulary (tens of ms for
// a flat distribution over 129k tokens), a radix selection on the bits of the probabilities
// (positive floats order like their bit patterns) finds the boundary: a histogram of mass over
// the high 11 bits locates the bucket where the cumulative mass from the top crosses the
// target, a second one over the next 12 bits narrows it, and only that last bucket is sorted.
// Works on order_[0, n) (the candidates), which it reorders.
void Sampler::top_p_filter(size_t n, double z) {
  const double target = static_cast<double>(params_.top_p) * z;
  double above = 0.0;  // mass of the tokens known to be above the current bucket
  size_t m = n;        // order_[0, m): the tokens still undecided
  const int shifts[2] = {20, 8};
  const uint32_t masks[2] = {0x7FF, 0xFFF};
  for (int level = 0; level < 2; ++level) {
    std::fill(hist_.begin(), hist_.end(), 0.0);
    for (size_t i = 0; i < m; ++i) {
      const float p = probs_[static_cast<size_t>(order_[i])];
      hist_[(float_bits(p) >> shifts[level]) & masks[level]] += p;
    }
    int64_t b = static_cast<int64_t>(masks[level]);
    for (; b >= 0; --b) {
      if (above + hist_[static_cast<size_t>(b)] >= target) break;
      above += hist_[static_cast<size_t>(b)];
    }
    if (b < 0) return;  // rounding left the target out of reach: keep everything
    size_t j = 0;
    for (size_t i = 0; i < m; ++i) {
      const int32_t t = order_[i];
      if (((float_bits(probs_[static_cast<size_t>(t)]) >> shifts[level]) & masks[level]) == static_cast<uint32_t>(b)) order_[j++] = t;
    }
    m = j;
  }
  const float* pr = probs_.data();
  std::sort(order_.begin(), order_.begin() + static_cast<std::ptrdiff_t>(m),
            [pr](int32_t a, int32_t b) { return pr[a] > pr[b] || (pr[a] == pr[b] && a < b); });
  size_t last = m - 1;
  for (size_t i = 0; i < m; ++i) {
    above += pr[order_[i]];
    if (above >= target) {
      last = i;
      break;
    }
  }
  const float p_star = pr[order_[last]];
  const int32_t id_star = order_[last];
  for (size_t t = 0; t < probs_.size(); ++t) {
    const float p = probs_[t];
    if (p < p_star || (p == p_star && static_cast<int32_t>(t) > id_star)) probs_[t] = 0.0f;
  }
}

void Sampler::prepare(std::span<const float> logits, const TokenHistory* history) {
  if (static_cast<int64_t>(logits.size()) != vocab_)
    throw Error("Sampler: got " + std::to_string(logits.size()) + " logits for a vocabulary of " + std::to_string(vocab_));
  const size_t V = static_cast<size_t>(vocab_);
  // NaN never wins; +inf becomes the largest finite value so that exp(l - max) stays finite.
  for (size_t i = 0; i < V; ++i) {
    const float x = logits[i];
    work_[i] = std::isnan(x) ? kNegInf : (x == -kNegInf ? std::numeric_limits<float>::max() : x);
  }
  if (history) apply_penalties(params_, *history, work_);

  greedy_ = -1;
  if (params_.temperature < kGreedyTemperature) {
    // Strict '>' keeps the first (lowest) id among equal maxima.
    int32_t best = -1;
    float bv = kNegInf;
    for (size_t i = 0; i < V; ++i)
      if (work_[i] > bv) {
        bv = work_[i];
        best = static_cast<int32_t>(i);
      }
    if (best < 0) throw Error("Sampler: every logit is -inf or NaN");
    greedy_ = best;
    return;
  }

  // Temperature; candidates are the tokens with a finite scaled logit.
  size_t n = 0;
  for (size_t i = 0; i < V; ++i) {
    work_[i] = work_[i] / params_.temperature;
    if (work_[i] > kNegInf) order_[n++] = static_cast<int32_t>(i);
  }
  if (n == 0) throw Error("Sampler: every logit is -inf or NaN");
  const float* s = work_.data();
  // Descending by value, ties by ascending id: a total order, so the kept set never depends on
  // the standard library's selection algorithm.
  auto before = [s](int32_t a, int32_t b) { return s[a] > s[b] || (s[a] == s[b] && a < b); };
  auto first = order_.begin();

  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < n) {
    std::nth_element(first, first + params_.top_k - 1, first + static_cast<std::ptrdiff_t>(n), before);
    n = static_cast<size_t>(params_.top_k);
  }
  float m = kNegInf;
  for (size_t i = 0; i < n; ++i) m = std::max(m, s[order_[i]]);
  // Unnormalised probabilities exp(l - max): the most likely token has exactly 1.
  std::fill(probs_.begin(), probs_.end(), 0.0f);
  double z = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const int32_t t = order_[i];
    probs_[static_cast<size_t>(t)] = std::exp(s[t] - m);
    z += probs_[static_cast<size_t>(t)];
  }

  if (params_.top_p < 1.0f && n > 1) top_p_filter(n, z);

  if (params_.min_p > 0.0f) {
    // Relative to the largest probability, which is exp(0) = 1 here.
    for (float& p : probs_)
      if (p < params_.min_p) p = 0.0f;
  }

  // Total in id order (the order the draw walks), so the draw's comparisons are consistent.
  total_ = 0.0;
  for (size_t i = 0; i < V; ++i) total_ += probs_[i];
}

int32_t Sampler::draw() {
  if (greedy_ >= 0) return greedy_;
  const double u = static_cast<double>(next_u64() >> 11) * 0x1.0p-53 * total_;
  double cum = 0.0;
  int32_t last = -1;
  const size_t V = static_cast<size_t>(vocab_);
  for (size_t i = 0; i < V; ++i) {
    if (probs_[i] == 0.0f) continue;
    cum += probs_[i];
    last = static_cast<int32_t>(i);
    if (u < cum) return last;
  }
  return last;  // u within rounding of the total
}

void Sampler::fill_logprobs(std::span<const float> logits, SampleResult& r) const {
  // log-softmax of the unmodified logits, accumulated in double.
  double m = -std::numeric_limits<double>::infinity();
  for (float x : logits)
    if (!std::isnan(x)) m = std::max(m, static_cast<double>(x));
  double sum = 0.0;
  for (float x : logits)
    if (!std::isnan(x)) sum += std::exp(static_cast<double>(x) - m);
  const double lse = m + std::log(sum);
  auto lp = [&](int32_t t) {
    const float x = logits[static_cast<size_t>(t)];
    return std::isnan(x) ? -std::numeric_limits<float>::infinity() : static_cast<float>(static_cast<double>(x) - lse);
  };
  r.logprob = lp(r.token);
  // Top-n by insertion into a small sorted array (descending logit, ties by lower id).
  const int n = params_.top_logprobs;
  r.n_top = 0;
  if (n == 0) return;
  std::array<float, kMaxTopLogprobs> val;  // logits of the entries of r.top (NaN as -inf)
  for (size_t i = 0; i < logits.size(); ++i) {
    const float x = std::isnan(logits[i]) ? kNegInf : logits[i];
    if (r.n_top == n && !(x > val[static_cast<size_t>(n - 1)])) continue;
    int pos = r.n_top < n ? r.n_top++ : n - 1;
    // Shift smaller entries down; equal values keep their (lower-id) place.
    while (pos > 0 && x > val[static_cast<size_t>(pos - 1)]) {
      r.top[static_cast<size_t>(pos)] = r.top[static_cast<size_t>(pos - 1)];
      val[static_cast<size_t>(pos)] = val[static_cast<size_t>(pos - 1)];
      --pos;
    }
    r.top[static_cast<size_t>(pos)].token = static_cast<int32_t>(i);
    val[static_cast<size_t>(pos)] = x;
  }
  for (int i = 0; i < r.n_top; ++i) r.top[static_cast<size_t>(i)].logprob = lp(r.top[static_cast<size_t>(i)].token);
}

SampleResult Sampler::sample(std::span<const float> logits, const TokenHistory* history) {
  prepare(logits, history);
  SampleResult r;
  r.token = draw();
  if (params_.logprobs || params_.top_logprobs > 0) fill_logprobs(logits, r);
  return r;
}

std::span<const float> Sampler::distribution(std::span<const float> logits, const TokenHistory* history) {
  prepare(logits, history);
  // work_ is free after prepare: reuse it for the normalised output.
  if (greedy_ >= 0) {
    std::fill(work_.begin(), work_.end(), 0.0f);
    work_[static_cast<size_t>(greedy_)] = 1.0f;
  } else {
    for (size_t i = 0; i < work_.size(); ++i) work_[i] = static_cast<float>(probs_[i] / total_);
  }
  return work_;
}

double Sampler::sampling_logprob(int32_t token) const {
  if (token < 0 || token >= vocab_) throw Error("Sampler::sampling_logprob: token " + std::to_string(token) + " outside the vocabulary");
  if (greedy_ >= 0) return token == greedy_ ? 0.0 : -std::numeric_limits<double>::infinity();
  const float p = probs_[static_cast<size_t>(token)];
  if (p == 0.0f || !(total_ > 0.0)) return -std::numeric_limits<double>::infinity();
  return std::log(static_cast<double>(p) / total_);
}

double Sampler::uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

int32_t Sampler::draw_from(std::span<const float> weights) {
  if (static_cast<int64_t>(weights.size()) != vocab_)
    throw Error("Sampler::draw_from: got " + std::to_string(weights.size()) + " weights for a vocabulary of " + std::to_string(vocab_));
  double total = 0.0;
  for (float w : weights) total += w;
  if (!(total > 0.0)) return -1;
  const double u = uniform() * total;
  double cum = 0.0;
  int32_t last = -1;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (weights[i] <= 0.0f) continue;
    cum += weights[i];
    last = static_cast<int32_t>(i);
    if (u < cum) return last;
  }
  return last;  // u within rounding of the total
}

SampleResult Sampler::result_for(std::span<const float> logits, int32_t token) const {
  SampleResult r;
  r.token = token;
  if (params_.logprobs || params_.top_logprobs > 0) fill_logprobs(logits, r);
  return r;
}

}  // namespace dsv4
