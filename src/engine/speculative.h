// Speculative decoding with the model's MTP block (spec 3.9): the MTP block drafts up to N
// tokens (chained: draft k+1 feeds the MTP block's own output streams back with draft k), the
// main model verifies the pending token + the drafts in ONE forward pass, and the standard
// speculative-sampling rule decides, position by position, which tokens are kept:
//   * greedy: the draft is kept iff it is the argmax of the target logits (so the output is
//     exactly greedy decoding's);
//   * sampling: with target distribution p and draft distribution q (the sampler's processed
//     distributions: penalties, temperature, top-k / top-p / min-p, constraint masks), draft d
//     is kept with probability min(1, p(d) / q(d)); at the first rejection the token is drawn
//     from the normalised residual max(0, p - q); after N kept drafts one more token is drawn
//     from p. Every committed token then has exactly the target distribution.
// Rejected positions are rolled back (Session::commit_verified: window rings, compressor
// rings and entries, indexer keys, MTP state), so the session ends as a plain decode of the
// committed tokens leaves it.
//
// Exactness: the target logits of a position are the verify forward's row for it, which the
// batch-invariant forward computes bit-identically to a one-token decode step; the hooks see
// the tokens one at a time in order, as a plain decode loop does (penalty history, stop
// strings, constraints, logprobs of the same logits).
//
// No allocation per step: every buffer is sized at construction (drafts, their
// distributions) or grows once (the session's verify buffers).
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "engine/sampler.h"
#include "engine/session.h"

namespace dsv4 {

inline constexpr int kMaxDraft = 4;

// The acceptance rule's primitives (exposed for the exact test).
// Keeps a draft whose target probability is p_d and draft probability q_d > 0, given a
// uniform u in [0, 1): u < p_d / q_d (always when p_d >= q_d).
bool spec_accept(float p_d, float q_d, double u);
// out = max(0, p - q) elementwise (unnormalised residual); returns its sum. When the sum is 0
// (p == q up to rounding, so a rejection had probability ~0) out = p.
double spec_residual(std::span<const float> p, std::span<const float> q, std::span<float> out);

struct SpecStats {
  int64_t steps = 0;     // verify passes
  int64_t drafted = 0;   // drafted tokens
  int64_t accepted = 0;  // drafted tokens kept
  double acceptance() const { return drafted > 0 ? static_cast<double>(accepted) / static_cast<double>(drafted) : 0.0; }
};

// What the decode loop does with each token, in order.
struct SpecHooks {
  // The logits the sampler should see at the next position, given the model's (e.g. with a
  // constraint's mask applied; may return `raw`). An empty span ends the generation (no token
  // is allowed). Optional.
  std::function<std::span<const float>(std::span<const float> raw)> prepare;
  // A token is chosen (the SampleResult carries its logprobs); false ends the generation.
  // The owner updates the sampler's TokenHistory here, as a plain loop does after sample().
  std::function<bool(const SampleResult&)> commit;
  // Tests: replaces draft k of a step (given the MTP block's choice); greedy sampling only,
  // since a sampled draft must come from its draft distribution. Optional.
  std::function<int32_t(int k, int32_t drafted)> override_draft;
};

class SpeculativeDecoder {
 public:
  // n_draft in 1..kMaxDraft; the session must run the MTP block (SessionOptions::mtp) and
  // have a rewind horizon >= n_draft. The sampler and history are the decode loop's own.
  SpeculativeDecoder(Session& session, Sampler& sampler, const TokenHistory* history, int n_draft);

  struct StepResult {
    bool running = false;  // false: a hook ended the generation
    int32_t pending = -1;  // the last committed token (not yet in the session) when running
  };
  // One step from `pending` (a committed token not yet appended to the session): drafts
  // min(n_draft, max_new - 1, room in the context - 1) tokens, verifies, commits between 1
  // and drafts + 1 tokens through the hooks, so never more than max_new. With no room for
  // drafts, or no MTP streams to draft from, it is a plain decode step. With max_new < 1 it
  // commits nothing, leaves the session as it is and returns running = false.
  StepResult step(int32_t pending, int64_t max_new, const SpecHooks& hooks);

  // Automatic policy: once kAutoProbeDrafts drafts have been checked, steps stop drafting
  // (plain decode steps) while the acceptance rate is below `rate` (0: never; the default).
  static constexpr int64_t kAutoProbeDrafts = 32;
  void set_min_acceptance(double rate) { min_acceptance_ = rate; }

  const SpecStats& stats() const { return stats_; }
  int n_draft() const { return n_draft_; }

 private:
  Session& session_;
  Sampler& sampler_;
  const TokenHistory* history_;
  int n_draft_;
  int64_t V_;
  std::vector<float> q_;         // [n_draft, V] draft distributions
  std::vector<float> p_;         // [V] target distribution of the current position
  std::vector<float> residual_;  // [V]
  std::vector<int64_t> verify_tokens_;
  SpecStats stats_;
  double min_acceptance_ = 0.0;
};

}  // namespace dsv4
