#include "engine/session.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <string>

#include "base/error.h"
#include "model/forward.h"
#include "model/mtp.h"
#include "model/state_io.h"

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
  mtp_ = options_.mtp && !model_->mtp.empty() && !state_.mtp.empty();
  if (mtp_) {
    hcd_ = c.hc_mult * c.dim;
    h_ring_.assign(static_cast<size_t>(kMtpStreamHistory * hcd_), 0.0f);
    h_pos_.assign(static_cast<size_t>(kMtpStreamHistory), -1);
    mtp_logits_.resize(static_cast<size_t>(c.vocab_size));
    mtp_stream_.resize(static_cast<size_t>(hcd_));
    mtp_gather_.resize(static_cast<size_t>(kMtpStreamHistory * hcd_));
  }
}

float* Session::streams_for(int64_t n) {
  if (streams_.size() < static_cast<size_t>(n * hcd_)) streams_.resize(static_cast<size_t>(n * hcd_));
  return streams_.data();
}

void Session::mtp_after_forward(const float* h, int64_t start, int64_t n) {
  if (!mtp_) return;
  const int64_t R = kMtpStreamHistory;
  // MTP positions before `start` need recorded streams: continue from the longest run of
  // recorded positions ending at start - 1; positions before it are skipped.
  const int64_t mp = state_.mtp_pos;
  if (mp < start) {
    int64_t from = start;
    while (from > mp && h_pos_[static_cast<size_t>((from - 1) % R)] == from - 1) --from;
    state_.mtp_pos = from;
    const int64_t k = start - from;
    if (k > 0) {
      for (int64_t i = 0; i < k; ++i)
        std::copy_n(h_ring_.data() + ((from + i) % R) * hcd_, hcd_, mtp_gather_.data() + i * hcd_);
      mtp_forward(*model_, state_, mtp_gather_.data(), tokens_.data() + from + 1, k, nullptr, false, nullptr, nullptr);
    }
  }
  if (n > 1) mtp_forward(*model_, state_, h, tokens_.data() + start + 1, n - 1, nullptr, false, nullptr, nullptr);
  for (int64_t i = std::max<int64_t>(0, n - R); i < n; ++i) {
    const int64_t p = start + i;
    std::copy_n(h + i * hcd_, hcd_, h_ring_.data() + (p % R) * hcd_);
    h_pos_[static_cast<size_t>(p % R)] = p;
  }
}

void Session::drop_drafts() {
  if (draft_start_ >= 0) {
    state_.truncate_mtp(draft_start_);
    draft_start_ = -1;
  }
}

void Session::settle() {
  if (verify_start_ >= 0)
    commit_verified(verify_n_);
  else
    drop_drafts();
}

std::span<const float> Session::draft_first(int64_t token) {
  if (!mtp_) throw Error("draft: the session does not run the MTP block");
  if (verify_start_ >= 0) throw Error("draft: a verification is pending");
  drop_drafts();
  const int64_t p = size() - 1;
  if (p < 0 || state_.mtp_pos != p || h_pos_[static_cast<size_t>(p % kMtpStreamHistory)] != p) return {};
  draft_start_ = p;
  mtp_forward(*model_, state_, h_ring_.data() + (p % kMtpStreamHistory) * hcd_, &token, 1, mtp_logits_.data(), false,
              mtp_stream_.data(), nullptr);
  return mtp_logits_;
}

std::span<const float> Session::draft_next(int64_t token) {
  if (draft_start_ < 0) throw Error("draft_next: no draft_first before it");
  std::copy_n(mtp_stream_.data(), hcd_, mtp_gather_.data());
  mtp_forward(*model_, state_, mtp_gather_.data(), &token, 1, mtp_logits_.data(), false, mtp_stream_.data(), nullptr);
  return mtp_logits_;
}

std::span<const float> Session::verify(std::span<const int64_t> tokens) {
  if (!mtp_) throw Error("verify: the session does not run the MTP block");
  if (verify_start_ >= 0) throw Error("verify: a verification is pending");
  if (tokens.empty()) throw Error("verify: no tokens");
  check_append(tokens);
  const int64_t n = static_cast<int64_t>(tokens.size());
  const size_t V = static_cast<size_t>(vocab_size());
  if (verify_logits_.size() < static_cast<size_t>(n) * V) verify_logits_.resize(static_cast<size_t>(n) * V);
  ForwardOutput out;
  out.logits = verify_logits_.data();
  out.all_logits = true;
  out.final_streams = streams_for(n);
  const int64_t start = size();
  forward(*model_, state_, tokens.data(), n, out);
  tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
  verify_start_ = start;
  verify_n_ = n;
  logits_valid_ = false;
  return std::span<const float>(verify_logits_.data(), static_cast<size_t>(n) * V);
}

void Session::commit_verified(int64_t kept) {
  if (verify_start_ < 0) throw Error("commit_verified: no verification pending");
  if (kept < 1 || kept > verify_n_)
    throw Error("commit_verified: " + std::to_string(kept) + " tokens kept of " + std::to_string(verify_n_) + " verified");
  const int64_t P = verify_start_;
  // Drafted MTP positions from P on used the MTP block's own streams: recompute them.
  if (draft_start_ >= 0 && state_.mtp_pos > P) state_.truncate_mtp(P);
  draft_start_ = -1;
  state_.truncate(P + kept);
  tokens_.resize(static_cast<size_t>(P + kept));
  const size_t V = static_cast<size_t>(vocab_size());
  std::copy_n(verify_logits_.data() + static_cast<size_t>(kept - 1) * V, V, logits_.data());
  logits_valid_ = true;
  verify_start_ = -1;
  verify_n_ = 0;
  mtp_after_forward(streams_.data(), P, kept);
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
  settle();
  tokens_.reserve(tokens_.size() + tokens.size());
  int64_t done = 0;
  while (done < n) {
    const int64_t chunk = std::min(options_.prefill_chunk, n - done);
    ForwardOutput out;
    out.logits = logits_.data();
    out.all_logits = false;
    if (mtp_) out.final_streams = streams_for(chunk);
    const int64_t start = size();
    forward(*model_, state_, tokens.data() + done, chunk, out);
    tokens_.insert(tokens_.end(), tokens.begin() + done, tokens.begin() + done + chunk);
    mtp_after_forward(streams_.data(), start, chunk);
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
  for (const SessionAppend& it : items) it.session->settle();
  ws.items.resize(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    Session& s = *items[i].session;
    ForwardItem& f = ws.items[i];
    f = ForwardItem{};
    f.state = &s.state_;
    f.tokens = items[i].tokens.data();
    f.n = static_cast<int64_t>(items[i].tokens.size());
    f.out.logits = s.logits_.data();
    if (s.mtp_) f.out.final_streams = s.streams_for(f.n);
  }
  try {
    forward_batch(*first->model_, ws.items, ws.model);
  } catch (...) {
    for (const SessionAppend& it : items) it.session->reset();
    throw;
  }
  for (const SessionAppend& it : items) {
    Session& s = *it.session;
    const int64_t start = s.size();
    s.tokens_.insert(s.tokens_.end(), it.tokens.begin(), it.tokens.end());
    s.logits_valid_ = true;
    s.mtp_after_forward(s.streams_.data(), start, static_cast<int64_t>(it.tokens.size()));
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

bool Session::can_rewind_without_recompute(int64_t n) const {
  const int64_t h = options_.rewind_horizon;
  if (n >= size() - h) return true;
  const int64_t ckpt_size = static_cast<int64_t>(checkpoint_tokens_.size());
  return checkpoint_ && n <= ckpt_size && n >= ckpt_size - h &&
         std::equal(tokens_.begin(), tokens_.begin() + n, checkpoint_tokens_.begin());
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
    if (mtp_) {
      h_ring_ = ckpt_h_ring_;
      h_pos_ = ckpt_h_pos_;
    }
    if (n < ckpt_size) state_.truncate(n);
    tokens_.resize(static_cast<size_t>(n));
    return true;
  }
  return false;
}

int64_t Session::truncate(int64_t n, const ProgressFn& progress) {
  if (n < 0 || n > size()) throw Error("truncate: length " + std::to_string(n) + " outside [0, " + std::to_string(size()) + "]");
  settle();
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
  settle();
  checkpoint_ = state_;
  checkpoint_tokens_ = tokens_;
  if (mtp_) {
    ckpt_h_ring_ = h_ring_;
    ckpt_h_pos_ = h_pos_;
  }
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

int64_t Session::reusable_prefix(std::span<const int64_t> prompt) const {
  if (prompt.empty()) return 0;
  const int64_t common = common_prefix(prompt);
  return common == size() || can_rewind_without_recompute(common) ? common : 0;
}

int64_t Session::reuse_prefix(std::span<const int64_t> prompt) {
  check_prompt(prompt);
  settle();
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
  verify_start_ = draft_start_ = -1;
  verify_n_ = 0;
  std::fill(h_pos_.begin(), h_pos_.end(), int64_t{-1});
}

namespace {
void put_tokens(ByteWriter& w, const std::vector<int64_t>& t) {
  for (int64_t x : t) w.put<int32_t>(static_cast<int32_t>(x));
}
}  // namespace

std::string Session::save(uint64_t model_fingerprint) const {
  for (int64_t t : tokens_)
    if (t < 0 || t > std::numeric_limits<int32_t>::max()) throw Error("session save: token id " + std::to_string(t) + " does not fit int32");
  ByteWriter toks;
  put_tokens(toks, tokens_);
  ByteWriter pay;
  const bool with_logits = logits_valid_;
  const bool with_ckpt = checkpoint_.has_value();
  if (with_logits) {
    pay.put<uint64_t>(logits_.size());
    pay.bytes(logits_.data(), logits_.size() * sizeof(float));
  }
  save_state(state_, pay);
  if (with_ckpt) {
    pay.put<uint64_t>(checkpoint_tokens_.size());
    put_tokens(pay, checkpoint_tokens_);
    save_state(*checkpoint_, pay, &state_);
  }
  StateFileHeader h;
  h.fingerprint = model_fingerprint;
  h.numerics = state_.numerics;
  h.flags = static_cast<uint8_t>((with_logits ? StateFileHeader::kHasLogits : 0) | (with_ckpt ? StateFileHeader::kHasCheckpoint : 0));
  h.n_tokens = size();
  h.tokens_crc = crc32_bytes(toks.buffer().data(), toks.buffer().size());
  h.rewind_horizon = state_.rewind_horizon;
  h.payload_bytes = pay.buffer().size();
  h.payload_crc = crc32_bytes(pay.buffer().data(), pay.buffer().size());
  ByteWriter out;
  out.buffer().reserve(kStateHeaderBytes + toks.buffer().size() + pay.buffer().size());
  write_state_header(out, h);
  out.bytes(toks.buffer().data(), toks.buffer().size());
  out.bytes(pay.buffer().data(), pay.buffer().size());
  return std::move(out.buffer());
}

void Session::load(std::string_view bytes, uint64_t model_fingerprint, const std::string& name) {
  const ModelConfig& c = model_->config;
  const StateFileHeader h = parse_state_header(bytes, name);
  auto hex = [](uint64_t v) {
    char b[20];
    snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
    return std::string(b);
  };
  if (h.fingerprint != model_fingerprint)
    throw Error(name + ": model fingerprint " + hex(h.fingerprint) + " differs from this model's " + hex(model_fingerprint) +
                " (written for another model)");
  if (h.numerics != options_.numerics)
    throw Error(name + ": numerics is " + numerics_name(h.numerics) + ", this session runs " + numerics_name(options_.numerics));
  if (h.rewind_horizon != state_.rewind_horizon)
    throw Error(name + ": rewind horizon is " + std::to_string(h.rewind_horizon) + ", this session uses " +
                std::to_string(state_.rewind_horizon));
  if (h.n_tokens > context_)
    throw Error(name + ": token count " + std::to_string(h.n_tokens) + " exceeds this session's context " + std::to_string(context_));
  if (bytes.size() != h.file_bytes())
    throw Error(name + ": file size is " + std::to_string(bytes.size()) + " bytes, the header announces " + std::to_string(h.file_bytes()) +
                (bytes.size() < h.file_bytes() ? " (truncated)" : " (trailing bytes)"));
  std::vector<int64_t> toks = parse_state_tokens(bytes, h, name);
  if (!toks.empty()) {
    try {
      check_tokens(c, toks.data(), static_cast<int64_t>(toks.size()));
    } catch (const Error& e) {
      throw Error(name + ": tokens: " + e.what());
    }
  }
  const std::string_view payload = bytes.substr(kStateHeaderBytes + toks.size() * 4);
  if (crc32_bytes(payload.data(), payload.size()) != h.payload_crc) throw Error(name + ": payload crc mismatch (corrupt state data)");
  ByteReader r(payload, name);
  std::vector<float> logits(static_cast<size_t>(c.vocab_size));
  const bool with_logits = (h.flags & StateFileHeader::kHasLogits) != 0;
  if (with_logits) {
    const uint64_t v = r.get<uint64_t>("logits size");
    if (v != static_cast<uint64_t>(c.vocab_size))
      r.fail("logits size is " + std::to_string(v) + ", the model's vocabulary is " + std::to_string(c.vocab_size));
    r.bytes(logits.data(), logits.size() * sizeof(float), "logits");
  }
  SequenceState st(c, options_.numerics, options_.rewind_horizon);
  load_state(r, st);
  if (st.pos != h.n_tokens)
    r.fail("state pos is " + std::to_string(st.pos) + ", the file holds " + std::to_string(h.n_tokens) + " tokens");
  std::optional<SequenceState> ckpt;
  std::vector<int64_t> ckpt_tokens;
  if (h.flags & StateFileHeader::kHasCheckpoint) {
    const uint64_t m = r.get<uint64_t>("checkpoint token count");
    if (m > static_cast<uint64_t>(context_) || m * 4 > r.remaining())
      r.fail("checkpoint token count " + std::to_string(m) + " out of range");
    ckpt_tokens.resize(static_cast<size_t>(m));
    for (uint64_t i = 0; i < m; ++i) ckpt_tokens[i] = r.get<int32_t>("checkpoint tokens");
    if (m > 0) {
      try {
        check_tokens(c, ckpt_tokens.data(), static_cast<int64_t>(m));
      } catch (const Error& e) {
        throw Error(name + ": checkpoint tokens: " + e.what());
      }
    }
    ckpt.emplace(c, options_.numerics, options_.rewind_horizon);
    load_state(r, *ckpt, &st);
    if (ckpt->pos != static_cast<int64_t>(m))
      r.fail("checkpoint pos is " + std::to_string(ckpt->pos) + ", the checkpoint holds " + std::to_string(m) + " tokens");
  }
  if (r.remaining() != 0) r.fail(std::to_string(r.remaining()) + " unexpected bytes after the state");
  // Everything checked: commit.
  state_ = std::move(st);
  tokens_ = std::move(toks);
  logits_ = std::move(logits);
  logits_valid_ = with_logits;
  checkpoint_ = std::move(ckpt);
  checkpoint_tokens_ = std::move(ckpt_tokens);
  // The final streams of the MTP block's input are not saved: it continues after a gap.
  verify_start_ = draft_start_ = -1;
  verify_n_ = 0;
  std::fill(h_pos_.begin(), h_pos_.end(), int64_t{-1});
  std::fill(ckpt_h_pos_.begin(), ckpt_h_pos_.end(), int64_t{-1});
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
