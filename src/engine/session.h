// Session: one sequence's state over a shared, read-only model. Appends tokens (batched,
// chunked prefill), steps one token at a time, and rewinds (`truncate`) to any earlier length
// with logits identical to a fresh prefill of the same prefix.
//
// Rewinds: the model state keeps a rewind horizon H of extra ring slots (model/state.h), so
// going back at most H tokens only cuts the append-only compressed caches and moves the
// position back. The session also keeps a checkpoint (a copy of the state taken after the last
// prompt prefill, when `checkpoint()` is called): a multi-turn chat whose earlier reasoning is
// dropped from the next prompt rewinds to just before that turn's generation, which the
// checkpoint serves without recomputation. Anything further back re-prefills the kept tokens
// (still exact, since prefill is batch-shape invariant, but it costs compute).
//
// Batching: append_batch / step_batch run one forward pass over several sessions (continuous
// batching in the server: decode steps of all running sequences plus prefill chunks of new
// ones). Each session ends up exactly as if append / step had been called on it alone: the
// same tokens, the same logits (bitwise: the model's batched forward is batch-invariant), the
// same rewind horizon.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/forward.h"
#include "model/state.h"
#include "model/weights.h"
#include "ops/numerics.h"

namespace dsv4 {

struct SessionOptions {
  Numerics numerics = Numerics::kReference;
  int64_t context = 0;            // max tokens in the sequence; 0 = the model's max_position_embeddings
  int64_t rewind_horizon = 256;   // tokens a truncate can go back without recomputation
  int64_t prefill_chunk = 256;    // tokens per forward call while prefilling (bounds workspace memory)
  // Keep the MTP block's state in step with the main model (every append also runs the MTP
  // block over the new positions), so the session can draft tokens for speculative decoding
  // (engine/speculative.h). Ignored when the model has no MTP block.
  bool mtp = false;
};

// Called after each prefill chunk: (tokens done, tokens total).
using ProgressFn = std::function<void(int64_t, int64_t)>;

class Session;

// One session's part of a batched append: tokens.size() >= 1.
struct SessionAppend {
  Session* session = nullptr;
  std::span<const int64_t> tokens;
};

// Scratch of batched steps over several sessions: the model's batch workspace and the batch's
// item list. Owned by the caller (one per thread that runs batches, e.g. the server's scheduler
// thread); its buffers only grow, so a steady decode loop does not allocate.
struct BatchWorkspace {
  Workspace model;
  std::vector<ForwardItem> items;
  std::vector<SessionAppend> appends;
};

class Session {
 public:
  Session(std::shared_ptr<const ModelWeights> model, const SessionOptions& options);

  const ModelWeights& model() const { return *model_; }
  const SessionOptions& options() const { return options_; }
  int64_t size() const { return static_cast<int64_t>(tokens_.size()); }
  int64_t context() const { return context_; }
  int64_t vocab_size() const { return model_->config.vocab_size; }
  const std::vector<int64_t>& tokens() const { return tokens_; }

  // Appends tokens; returns the logits after the last one (valid until the next call).
  // Checks ids and the context limit before doing any work (throws Error).
  std::span<const float> append(std::span<const int64_t> tokens, const ProgressFn& progress = {});
  std::span<const float> step(int64_t token) { return append(std::span<const int64_t>(&token, 1)); }

  // Throws the Error append(tokens) would throw (context overflow, bad ids), doing no work.
  void check_append(std::span<const int64_t> tokens) const;

  // Appends items[i].tokens to items[i].session for every i in ONE forward pass (no chunking:
  // the caller sizes the batch). Afterwards each session's tokens and last_logits() are those
  // append() would give. The sessions must be distinct, share the model and numerics mode.
  // Everything is checked before any work (throws Error naming the item; no session changes).
  // Should the model fail after that, every session of the batch is reset (empty) and the
  // error rethrown.
  static void append_batch(std::span<const SessionAppend> items, BatchWorkspace& ws);
  // One decode step of several sessions: sessions[i] appends tokens[i].
  static void step_batch(std::span<Session* const> sessions, std::span<const int64_t> tokens, BatchWorkspace& ws);

  // Logits after the last token, or empty when unknown (empty session, or after a truncate
  // that did not recompute).
  std::span<const float> last_logits() const;

  // Back to the first n tokens (0 <= n <= size()). Returns the number of tokens recomputed
  // (0 when served by the rewind horizon or the checkpoint).
  int64_t truncate(int64_t n, const ProgressFn& progress = {});

  // Saves the current state as the checkpoint for later rewinds near this point.
  void checkpoint();

  struct PrefillResult {
    int64_t reused = 0;       // prompt tokens served from the existing state (not recomputed)
    int64_t computed = 0;     // tokens run through the model
    std::span<const float> logits;
  };
  // Reuses the longest common prefix of the current tokens and `prompt`, then appends the
  // rest; at least the last prompt token is always run, so its logits are fresh.
  PrefillResult prefill(std::span<const int64_t> prompt, const ProgressFn& progress = {});

  // The first half of prefill() without any model work, for callers that run the rest in
  // chunks themselves (append / append_batch): keeps the longest common prefix of the current
  // tokens and `prompt` (at most prompt.size() - 1 tokens) if the rewind horizon or the
  // checkpoint serves it, otherwise starts over empty. Returns the tokens kept (the reuse); the
  // caller then appends prompt[kept..]. Checks the prompt as prefill() does.
  int64_t reuse_prefix(std::span<const int64_t> prompt);
  // What reuse_prefix(prompt) would keep, without changing anything (0 when it would start
  // over): lets a prefix cache rank its entries by real reuse and leave alone an entry whose
  // shared prefix it could not rewind to.
  int64_t reusable_prefix(std::span<const int64_t> prompt) const;

  void reset();

  // ---- Speculative decoding (engine/speculative.h); requires has_mtp().
  // The MTP block runs one position behind the main model: MTP position i combines the main
  // model's final streams at i with token i+1. The session keeps the final streams of its last
  // kMtpStreamHistory positions to continue the MTP block after appends and short rewinds;
  // when they are gone (after a long rewind, a load) the MTP block skips the positions it
  // cannot compute (its drafts may then be worse, never wrong: verification decides).
  static constexpr int64_t kMtpStreamHistory = 8;
  bool has_mtp() const { return mtp_; }
  // MTP logits [V] predicting the token after `token`, where `token` is the next token to be
  // appended (MTP position size() - 1, from the main model's final streams there). Empty when
  // those streams are unknown (the caller then decodes without drafting).
  std::span<const float> draft_first(int64_t token);
  // Chained draft: the MTP logits predicting the token after `token`, which the previous
  // draft call predicted (the MTP block's own output streams stand in for the main model's).
  std::span<const float> draft_next(int64_t token);
  // Verification: appends tokens (the pending token + the drafts) in ONE forward pass and
  // returns the logits after each of them, [n, V] row-major. The MTP state still holds the
  // drafted positions until commit_verified().
  std::span<const float> verify(std::span<const int64_t> tokens);
  // Keeps the first `kept` (>= 1) tokens of the last verify() and rolls back the rest (main
  // and MTP state); the MTP block is recomputed over the kept positions from the main model's
  // streams, so the state equals that of appending the kept tokens one at a time. Afterwards
  // last_logits() is the verify row kept - 1.
  void commit_verified(int64_t kept);
  // Discards MTP positions computed by draft calls not followed by verify() (e.g. a drafting
  // step abandoned before verification).
  void drop_drafts();

  // Serialisation (the server's disk prefix cache; the file format is in model/state_io.h):
  // header, tokens, last logits if valid, the state, and the checkpoint if any (sharing its
  // compressed rows with the state where they agree). `model_fingerprint` identifies the
  // weights (model_fingerprint(model()); computed once by the caller).
  std::string save(uint64_t model_fingerprint) const;
  // Replaces this session's content with a saved one. Checks everything (fingerprint, numerics,
  // rewind horizon, context, CRCs, every structural field, token ids) and throws Error naming
  // `name` and the field; on error the session is unchanged.
  void load(std::string_view bytes, uint64_t model_fingerprint, const std::string& name);

  // Approximate bytes held by this session (state, checkpoint, token list, logits): what a
  // cache of finished sessions budgets against.
  size_t memory_bytes() const;

 private:
  std::shared_ptr<const ModelWeights> model_;
  SessionOptions options_;
  int64_t context_ = 0;
  SequenceState state_;
  std::vector<int64_t> tokens_;
  std::vector<float> logits_;
  bool logits_valid_ = false;
  // Rewinds to n tokens if that needs no recomputation (rewind horizon or checkpoint).
  bool rewind_without_recompute(int64_t n);
  bool can_rewind_without_recompute(int64_t n) const;
  void check_prompt(std::span<const int64_t> prompt) const;
  // The longest common prefix of the tokens and `prompt`, at most prompt.size() - 1.
  int64_t common_prefix(std::span<const int64_t> prompt) const;

  std::optional<SequenceState> checkpoint_;
  std::vector<int64_t> checkpoint_tokens_;  // the tokens the checkpoint state has seen

  // MTP bookkeeping (has_mtp()): final streams of recent positions (ring of
  // kMtpStreamHistory rows of hc*D, slot p % kMtpStreamHistory, tagged with its position).
  bool mtp_ = false;
  int64_t hcd_ = 0;  // hc_mult * dim
  std::vector<float> h_ring_;
  std::vector<int64_t> h_pos_;
  std::vector<float> ckpt_h_ring_;
  std::vector<int64_t> ckpt_h_pos_;
  std::vector<float> streams_;         // final streams of one forward call [n, hc*D]
  std::vector<float> mtp_gather_;      // contiguous ring rows for a catch-up
  std::vector<float> mtp_logits_;      // [V]
  std::vector<float> mtp_stream_;      // [hc*D] the last draft's MTP output streams
  std::vector<float> verify_logits_;   // [n, V]
  int64_t verify_start_ = -1;          // size() before the last verify(), -1 when none pending
  int64_t verify_n_ = 0;
  int64_t draft_start_ = -1;           // mtp_pos before the first draft call, -1 when none
  float* streams_for(int64_t n);
  // After a forward of n tokens at positions start.. whose final streams are h [n, hc*D] (and
  // whose tokens are in tokens_): records the streams and runs the MTP block over the
  // positions it can now compute.
  void mtp_after_forward(const float* h, int64_t start, int64_t n);
  // Ends a pending verification (keeping every verified token) or drops pending drafts.
  void settle();
};

}  // namespace dsv4
