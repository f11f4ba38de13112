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
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/state.h"
#include "model/weights.h"
#include "ops/numerics.h"

namespace dsv4 {

struct SessionOptions {
  Numerics numerics = Numerics::kReference;
  int64_t context = 0;            // max tokens in the sequence; 0 = the model's max_position_embeddings
  int64_t rewind_horizon = 256;   // tokens a truncate can go back without recomputation
  int64_t prefill_chunk = 256;    // tokens per forward call while prefilling (bounds workspace memory)
};

// Called after each prefill chunk: (tokens done, tokens total).
using ProgressFn = std::function<void(int64_t, int64_t)>;

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

  void reset();

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
  std::optional<SequenceState> checkpoint_;
  std::vector<int64_t> checkpoint_tokens_;  // the tokens the checkpoint state has seen
};

}  // namespace dsv4
