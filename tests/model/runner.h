// Runs the forward pass of tiny-a the ways the golden data was produced.
#pragma once
#include <vector>

#include "golden.h"
#include "model/forward.h"
#include "model/mtp.h"

namespace dsv4::test {

// Prefill of all tokens: logits of every position [N, V].
inline std::vector<float> prefill_logits(Numerics nm, const std::vector<int64_t>& tokens,
                                         std::vector<float>* streams = nullptr,
                                         std::vector<BlockTrace>* traces = nullptr) {
  auto w = tiny_model();
  const ModelConfig& c = w->config;
  const int64_t N = static_cast<int64_t>(tokens.size());
  SequenceState st(c, nm);
  std::vector<float> logits(static_cast<size_t>(N * c.vocab_size));
  ForwardOutput fo;
  fo.logits = logits.data();
  fo.all_logits = true;
  if (streams) {
    streams->resize(static_cast<size_t>(N * c.hc_mult * c.dim));
    fo.final_streams = streams->data();
  }
  fo.traces = traces;
  forward(*w, st, tokens.data(), N, fo);
  return logits;
}

// Prefill of K tokens, then one-token steps: [N-K+1, V] (the golden decode_k files).
// trace_fn(step, traces) is called after every decode step when given.
template <typename F>
std::vector<float> incremental_logits(Numerics nm, const std::vector<int64_t>& tokens, int64_t K,
                                      std::vector<BlockTrace>* traces, F&& after_step) {
  auto w = tiny_model();
  const ModelConfig& c = w->config;
  const int64_t N = static_cast<int64_t>(tokens.size()), V = c.vocab_size;
  SequenceState st(c, nm);
  std::vector<float> logits(static_cast<size_t>((N - K + 1) * V));
  ForwardOutput fo;
  fo.logits = logits.data();
  forward(*w, st, tokens.data(), K, fo);
  fo.traces = traces;
  for (int64_t p = K; p < N; ++p) {
    fo.logits = logits.data() + (p - K + 1) * V;
    forward(*w, st, tokens.data() + p, 1, fo);
    after_step(p - K);
  }
  return logits;
}
inline std::vector<float> incremental_logits(Numerics nm, const std::vector<int64_t>& tokens, int64_t K) {
  return incremental_logits(nm, tokens, K, nullptr, [](int64_t) {});
}

// MTP logits of every position i = 0..N-2 (final streams at i, token i+1).
inline std::vector<float> mtp_logits(Numerics nm, const std::vector<int64_t>& tokens) {
  auto w = tiny_model();
  const ModelConfig& c = w->config;
  const int64_t N = static_cast<int64_t>(tokens.size());
  std::vector<float> streams;
  SequenceState st(c, nm);
  streams.resize(static_cast<size_t>(N * c.hc_mult * c.dim));
  ForwardOutput fo;
  fo.final_streams = streams.data();
  forward(*w, st, tokens.data(), N, fo);
  std::vector<float> logits(static_cast<size_t>((N - 1) * c.vocab_size));
  mtp_forward(*w, st, streams.data(), tokens.data() + 1, N - 1, logits.data(), true, nullptr, nullptr);
  return logits;
}

}  // namespace dsv4::test
