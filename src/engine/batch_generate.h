// Batched generation over token ids: continuations of many prompts at once, for rollouts of
// post-training (GRPO groups, on-policy distillation) and for evaluation. Prompts are
// prefilled in chunks that share forward passes with the decode steps of running sequences
// (Session::append_batch); each sequence samples with its own Sampler (its own temperature,
// top_p, seed, ...), so the tokens of a sequence depend only on its prompt and its parameters,
// never on which other sequences share its batches (the model's batched forward is
// batch-invariant): batch_generate of N prompts == N separate generations.
//
// No text path (no detokenisation, stop strings or output parsing): callers decode the tokens.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "engine/generate.h"
#include "engine/sampler.h"
#include "model/weights.h"
#include "ops/numerics.h"

namespace dsv4 {

struct BatchPrompt {
  std::vector<int64_t> tokens;       // the prompt (>= 1 token)
  SamplingParams sampling;           // per sequence: temperature, top_p, seed, ...
  int64_t max_tokens = 256;          // >= 0; also bounded by the model's context
  std::vector<int64_t> stop_tokens;  // generation ends after writing one of these
  bool ignore_eos = false;
};

struct BatchCompletion {
  std::vector<int64_t> tokens;        // generated ids (the final EOS / stop token included)
  // Per generated token: log-probability under the distribution it was drawn from (after
  // penalties, temperature, top-k/top-p/min-p; 0 when greedy).
  std::vector<float> logprobs;
  // Per generated token: log-softmax of the model's unmodified logits.
  std::vector<float> model_logprobs;
  FinishReason finish = FinishReason::kLength;  // kEos, kStop (a stop token), kLength
  int stop_index = -1;                // which stop token ended it (kStop)
};

struct BatchGenerateOptions {
  Numerics numerics = Numerics::kReference;
  int64_t max_sequences = 16;      // sequences in flight at once (bounds state memory)
  int64_t max_batch_tokens = 512;  // tokens per forward pass (decode steps + prompt chunks)
  int64_t prefill_chunk = 256;     // prompt tokens of one sequence per forward pass
  // Called when a sequence finishes: (its index, sequences finished so far).
  std::function<void(size_t, size_t)> on_finished;
};

// Generates a completion for every prompt (results in prompt order). Checks every prompt and
// its sampling parameters before any model work; errors name the prompt index.
std::vector<BatchCompletion> batch_generate(std::shared_ptr<const ModelWeights> model, std::span<const BatchPrompt> prompts,
                                            const BatchGenerateOptions& options = {});

}  // namespace dsv4
