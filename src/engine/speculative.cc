#include "engine/speculative.h"

#include <algorithm>
#include <string>

#include "base/error.h"

namespace dsv4 {

bool spec_accept(float p_d, float q_d, double u) {
  if (!(q_d > 0.0f)) return p_d > 0.0f;
  return u * static_cast<double>(q_d) < static_cast<double>(p_d);
}

double spec_residual(std::span<const float> p, std::span<const float> q, std::span<float> out) {
  if (p.size() != q.size() || out.size() != p.size()) throw Error("spec_residual: distributions of different sizes");
  double sum = 0.0;
  for (size_t i = 0; i < p.size(); ++i) {
    const float r = p[i] > q[i] ? p[i] - q[i] : 0.0f;
    out[i] = r;
    sum += r;
  }
  if (sum > 0.0) return sum;
  sum = 0.0;
  for (size_t i = 0; i < p.size(); ++i) {
    out[i] = p[i];
    sum += p[i];
  }
  return sum;
}

SpeculativeDecoder::SpeculativeDecoder(Session& session, Sampler& sampler, const TokenHistory* history, int n_draft)
    : session_(session), sampler_(sampler), history_(history), n_draft_(n_draft), V_(session.vocab_size()) {
  if (n_draft < 1 || n_draft > kMaxDraft)
    throw Error("draft length " + std::to_string(n_draft) + " outside [1, " + std::to_string(kMaxDraft) + "]");
  if (!session.has_mtp())
    throw Error("speculative decoding needs the MTP block: the model has none, or the session was made without SessionOptions::mtp");
  if (session.options().rewind_horizon < n_draft)
    throw Error("speculative decoding with " + std::to_string(n_draft) + " drafted tokens needs a rewind horizon >= " +
                std::to_string(n_draft) + " (the session has " + std::to_string(session.options().rewind_horizon) + ")");
  if (sampler.vocab_size() != V_) throw Error("speculative decoding: the sampler's vocabulary differs from the model's");
  q_.resize(static_cast<size_t>(n_draft * V_));
  p_.resize(static_cast<size_t>(V_));
  residual_.resize(static_cast<size_t>(V_));
  verify_tokens_.resize(static_cast<size_t>(n_draft + 1));
}

SpeculativeDecoder::StepResult SpeculativeDecoder::step(int32_t pending, int64_t max_new, const SpecHooks& hooks) {
  // No budget left: nothing is committed and the session is left as it is (a plain step
  // here would add a token past max_tokens).
  if (max_new < 1) return {false, -1};
  auto prepare = [&](std::span<const float> raw) { return hooks.prepare ? hooks.prepare(raw) : raw; };
  const size_t V = static_cast<size_t>(V_);
  const int64_t room = session_.context() - session_.size() - 1;
  int n = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>({n_draft_, max_new - 1, room})));
  if (min_acceptance_ > 0.0 && stats_.drafted >= kAutoProbeDrafts && stats_.acceptance() < min_acceptance_) n = 0;

  auto plain_step = [&]() -> StepResult {
    std::span<const float> adj = prepare(session_.step(pending));
    if (adj.empty()) return {false, -1};
    const SampleResult s = sampler_.sample(adj, history_);
    return {hooks.commit(s), s.token};
  };
  if (n == 0) return plain_step();
  std::span<const float> ql = session_.draft_first(pending);
  if (ql.empty()) return plain_step();

  // Drafts: d_k drawn from q_k, the sampler's processed distribution of the MTP logits (the
  // penalty history as of this step; any q works as long as d_k is drawn from it).
  verify_tokens_[0] = pending;
  for (int k = 0; k < n; ++k) {
    if (k > 0) ql = session_.draft_next(verify_tokens_[static_cast<size_t>(k)]);
    std::span<const float> dist = sampler_.distribution(ql, history_);
    float* q = q_.data() + static_cast<size_t>(k) * V;
    std::copy(dist.begin(), dist.end(), q);
    int32_t d;
    if (sampler_.greedy()) {
      d = static_cast<int32_t>(std::max_element(q, q + V) - q);  // one-hot: the first maximum
    } else {
      d = sampler_.draw_from(std::span<const float>(q, V));
    }
    if (hooks.override_draft) {
      if (!sampler_.greedy()) throw Error("override_draft: only with greedy sampling");
      d = hooks.override_draft(k, d);
    }
    verify_tokens_[static_cast<size_t>(k + 1)] = d;
  }

  // One forward pass over the pending token and the drafts.
  std::span<const float> rows = session_.verify(std::span<const int64_t>(verify_tokens_.data(), static_cast<size_t>(n + 1)));
  ++stats_.steps;
  stats_.drafted += n;

  StepResult res{true, -1};
  int m = 0;  // committed tokens before the last one (the kept drafts)
  for (int j = 0; j <= n; ++j) {
    m = j;
    std::span<const float> adj = prepare(rows.subspan(static_cast<size_t>(j) * V, V));
    if (adj.empty()) {
      res = {false, -1};
      break;
    }
    SampleResult s;
    bool kept_draft = false;
    if (j == n || sampler_.greedy()) {
      // Greedy: the target's argmax, exactly what a plain step picks; the draft is kept iff it
      // is that token. After the last draft: a plain draw from the target.
      s = sampler_.sample(adj, history_);
      kept_draft = j < n && s.token == verify_tokens_[static_cast<size_t>(j + 1)];
    } else {
      const int32_t d = static_cast<int32_t>(verify_tokens_[static_cast<size_t>(j + 1)]);
      std::span<const float> p = sampler_.distribution(adj, history_);
      const float* q = q_.data() + static_cast<size_t>(j) * V;
      int32_t tok;
      if (spec_accept(p[static_cast<size_t>(d)], q[d], sampler_.uniform())) {
        tok = d;
        kept_draft = true;
      } else {
        spec_residual(p, std::span<const float>(q, V), residual_);
        tok = sampler_.draw_from(residual_);
      }
      s = sampler_.result_for(adj, tok);
    }
    if (kept_draft) ++stats_.accepted;
    res.pending = s.token;
    if (!hooks.commit(s)) {
      res.running = false;
      break;
    }
    if (!kept_draft) break;
  }
  // Keep the pending token and the committed drafts before the last committed token.
  session_.commit_verified(1 + m);
  return res;
}

}  // namespace dsv4
