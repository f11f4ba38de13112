#include "engine/session.h"

#include <algorithm>
#include <string>

#include "base/error.h"
#include "model/forward.h"

namespace dsv4 {

namespace {
// Models whose config omits max_position_embeddings get this context by default.
constexpr int64_t kFallbackContext = 4096;
}  // namespace

Session::Session(std::shared_ptr<const ModelWeights> model, const SessionOptions& options)
    : model_(std::move(model)), options_(options) {
  const ModelConfig& c = model_->config;
  const int64_t model_max = c.max_position_embeddings > 0 ? c.max_position_embeddings : kFallbackContext;
  context_ = options_.context > 0 ? options_.context : model_max;
  if (options_.context > model_max)
    throw Error("context size " + std::to_string(options_.context) + " exceeds the model's max_position_embeddings " +
                std::to_string(model_max));
  if (options_.rewind_horizon < 0) throw Error("rewind horizon must be >= 0");
  if (options_.prefill_chunk <= 0) options_.prefill_chunk = 256;
  state_ = SequenceState(c, options_.numerics, options_.rewind_horizon);
  logits_.resize(static_cast<size_t>(c.vocab_size));
}

void Session::check_append(std::span<const int64_t> tokens) const {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (size() + n > context_)
    throw Error("context overflow: " + std::to_string(size()) + " + " + std::to_string(n) + " tokens exceed the context size " +
                std::to_string(context_));
  if (n > 0) check_tokens(model_->config, tokens.data(), n);
}

std::span<const float> Session::append(std::span<const int64_t> tokens, const ProgressFn& progress) {
  if (tokens.empty()) return last_logits();
  const int64_t n = static_cast<int64_t>(tokens.size());
  check_append(tokens);
  tokens_.reserve(tokens_.size() + tokens.size());
  int64_t done = 0;
  while (done < n) {
    const int64_t chunk = std::min(options_.prefill_chunk, n - done);
    ForwardOutput out;
    out.logits = logits_.data();
    out.all_logits = false;
    forward(*model_, state_, tokens.data() + done, chunk, out);
    tokens_.insert(tokens_.end(), tokens.begin() + done, tokens.begin() + done + chunk);
    done += chunk;
    if (progress) progress(done, n);
  }
  logits_valid_ = true;
  return last_logits();
}

void Session::append_batch(std::span<const SessionAppend> items, BatchWorkspace& ws) {
  if (items.empty()) return;
  const Session* first = items[0].session;
  for (size_t i = 0; i < items.size(); ++i) {
    const SessionAppend& it = items[i];
    auto who = [i] { return "batch item " + std::to_string(i) + ": "; };
    if (!it.session) throw Error(who() + "no session");
    if (it.tokens.empty()) throw Error(who() + "no tokens");
    if (first && it.session->model_ != first->model_) throw Error(who() + "a session of another model");
    if (it.session->options_.numerics != first->options_.numerics)
      throw Error(who() + "a session in another numerics mode");
    for (size_t j = 0; j < i; ++j)
      if (items[j].session == it.session) throw Error(who() + "the session of item " + std::to_string(j) + " again");
    try {
      it.session->check_append(it.tokens);
    } catch (const Error& e) {
      throw Error(who() + e.what());
    }
  }
  ws.items.resize(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    Session& s = *items[i].session;
    ForwardItem& f = ws.items[i];
    f = ForwardItem{};
    f.state = &s.state_;
    f.tokens = items[i].tokens.data();
    f.n = static_cast<int64_t>(items[i].tokens.size());
    f.out.logits = s.logits_.data();
  }
  try {
    forward_batch(*first->model_, ws.items, ws.model);
  } catch (...) {
    for (const SessionAppend& it : items) it.session->reset();
    throw;
  }
  for (const SessionAppend& it : items) {
    Session& s = *it.session;
    s.tokens_.insert(s.tokens_.end(), it.tokens.begin(), it.tokens.end());
    s.logits_valid_ = true;
  }
}

void Session::step_batch(std::span<Session* const> sessions, std::span<const int64_t> tokens, BatchWorkspace& ws) {
  if (sessions.size() != tokens.size())
    throw Error("step_batch: " + std::to_string(sessions.size()) + " sessions but " + std::to_string(tokens.size()) + " tokens");
  // The item list lives in the caller's workspace too (no allocation per step).
  std::vector<SessionAppend>& items = ws.appends;
  items.resize(sessions.size());
  for (size_t i = 0; i < sessions.size(); ++i) items[i] = SessionAppend{sessions[i], tokens.subspan(i, 1)};
  append_batch(items, ws);
}

std::span<const float> Session::last_logits() const {
  if (!logits_valid_) return {};
  return std::span<const float>(logits_.data(), logits_.size());
}

bool Session::rewind_without_recompute(int64_t n) {
  const int64_t h = options_.rewind_horizon;
  if (n >= size() - h) {
    state_.truncate(n);
    tokens_.resize(static_cast<size_t>(n));
    return true;
  }
  const int64_t ckpt_size = static_cast<int64_t>(checkpoint_tokens_.size());
  if (checkpoint_ && n <= ckpt_size && n >= ckpt_size - h &&
      std::equal(tokens_.begin(), tokens_.begin() + n, checkpoint_tokens_.begin())) {
    // The checkpoint holds the state of checkpoint_tokens_, which agree with ours up to n.
    state_ = *checkpoint_;
    if (n < ckpt_size) state_.truncate(n);
    tokens_.resize(static_cast<size_t>(n));
    return true;
  }
  return false;
}

int64_t Session::truncate(int64_t n, const ProgressFn& progress) {
  if (n < 0 || n > size()) throw Error("truncate: length " + std::to_string(n) + " outside [0, " + std::to_string(size()) + "]");
  if (n == size()) return 0;
  logits_valid_ = false;
  if (rewind_without_recompute(n)) return 0;
  // Too far back: recompute the kept prefix from scratch.
  std::vector<int64_t> kept(tokens_.begin(), tokens_.begin() + n);
  reset();
  append(kept, progress);
  return n;
}

void Session::checkpoint() {
  checkpoint_ = state_;
  checkpoint_tokens_ = tokens_;
}

void Session::check_prompt(std::span<const int64_t> prompt) const {
  if (prompt.empty()) throw Error("empty prompt");
  if (static_cast<int64_t>(prompt.size()) > context_)
    throw Error("prompt of " + std::to_string(prompt.size()) + " tokens exceeds the context size " + std::to_string(context_));
  check_tokens(model_->config, prompt.data(), static_cast<int64_t>(prompt.size()));
}

int64_t Session::common_prefix(std::span<const int64_t> prompt) const {
  int64_t common = 0;
  const int64_t limit = std::min<int64_t>(size(), static_cast<int64_t>(prompt.size()) - 1);
  while (common < limit && tokens_[static_cast<size_t>(common)] == prompt[static_cast<size_t>(common)]) ++common;
  return common;
}

Session::PrefillResult Session::prefill(std::span<const int64_t> prompt, const ProgressFn& progress) {
  PrefillResult r;
  check_prompt(prompt);
  const int64_t common = common_prefix(prompt);
  const int64_t recomputed = truncate(common, progress);
  r.reused = common - recomputed;
  r.computed = recomputed + static_cast<int64_t>(prompt.size()) - common;
  r.logits = append(prompt.subspan(static_cast<size_t>(common)), progress);
  return r;
}

int64_t Session::reuse_prefix(std::span<const int64_t> prompt) {
  check_prompt(prompt);
  const int64_t common = common_prefix(prompt);
  if (common == size()) return common;
  logits_valid_ = false;
  if (rewind_without_recompute(common)) return common;
  reset();
  return 0;
}

void Session::reset() {
  state_.reset();
  tokens_.clear();
  logits_valid_ = false;
}

size_t Session::memory_bytes() const {
  // The state's own allocation report (model/state.h); the workspace is scratch sized by the
  // largest chunk and not counted.
  size_t n = static_cast<size_t>(state_.kv_bytes().total()) + tokens_.capacity() * sizeof(int64_t) +
             logits_.capacity() * sizeof(float);
  if (checkpoint_) n += static_cast<size_t>(checkpoint_->kv_bytes().total()) + checkpoint_tokens_.capacity() * sizeof(int64_t);
  return n;
}

}  // namespace dsv4
