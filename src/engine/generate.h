// The generation loop: prompt ids -> prefill (reusing the session's common prefix) -> sample
// token by token -> stream decoded text through stop strings and the output parser
// (reasoning / answer / tool calls), with token counts and timings.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "engine/sampler.h"
#include "engine/session.h"
#include "text/chat_encoder.h"
#include "text/output_parser.h"
#include "text/tokenizer.h"

namespace dsv4 {

enum class FinishReason {
  kEos,        // the model wrote EOS
  kStop,       // a stop string matched
  kLength,     // max_tokens or the context size reached
  kCancelled,  // the caller asked to stop
};
const char* finish_reason_name(FinishReason r);  // "eos", "stop", "length", "cancelled"

struct GenerateParams {
  SamplingParams sampling;
  int64_t max_tokens = -1;          // < 0: until the context is full
  std::vector<std::string> stop;    // stop strings (matched across token boundaries)
  bool ignore_eos = false;
  chat::ThinkingMode mode = chat::ThinkingMode::Thinking;  // how to parse the output
  bool checkpoint_after_prompt = true;  // keep a session checkpoint for cheap multi-turn rewinds
  // Speculative decoding with the MTP block (engine/speculative.h): tokens drafted per step,
  // 0 = off. Needs a session made with SessionOptions::mtp on a model with an MTP block.
  int spec_draft = 0;
  // Stop drafting for the rest of the generation when fewer than this fraction of the first
  // SpeculativeDecoder::kAutoProbeDrafts drafts (and later) are accepted (0: never).
  double spec_min_acceptance = 0.0;
};

struct GenerateStats {
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;      // prompt tokens reused from the session state
  int64_t generated_tokens = 0;
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;
  int64_t spec_steps = 0;      // speculative verify passes
  int64_t drafted_tokens = 0;  // tokens the MTP block drafted
  int64_t accepted_tokens = 0; // drafted tokens kept
  double prefill_tok_s() const;  // computed prompt tokens per second
  double decode_tok_s() const;   // generated tokens per second
};

struct GenerateResult {
  std::string text;                 // the completion text as decoded (special tokens as text)
  chat::ParsedMessage message;      // lenient parse of `text`
  std::vector<int32_t> tokens;      // generated ids (EOS included when written)
  std::vector<SampleResult> samples;  // per generated token, when logprobs were asked
  FinishReason finish = FinishReason::kLength;
  int stop_index = -1;              // which stop string matched
  GenerateStats stats;
};

struct GenerateCallbacks {
  std::function<void(const chat::StreamDelta&)> on_delta;   // parsed output as it streams
  std::function<void(int32_t token, const SampleResult&)> on_token;
  std::function<bool()> should_stop;                         // polled before each decode step
  ProgressFn on_prefill_progress;
};

GenerateResult generate(Session& session, const Tokenizer& tokenizer, std::span<const int64_t> prompt,
                        const GenerateParams& params, const GenerateCallbacks& callbacks = {});

}  // namespace dsv4
