#include "engine/generate.h"

#include <chrono>

#include "base/error.h"
#include "engine/speculative.h"
#include "engine/stop_strings.h"

namespace dsv4 {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kEos: return "eos";
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "cancelled";
  }
  return "?";
}

double GenerateStats::prefill_tok_s() const {
  const int64_t computed = prompt_tokens - cached_tokens;
  return prefill_seconds > 0 ? static_cast<double>(computed) / prefill_seconds : 0.0;
}

double GenerateStats::decode_tok_s() const {
  return decode_seconds > 0 ? static_cast<double>(generated_tokens) / decode_seconds : 0.0;
}

GenerateResult generate(Session& session, const Tokenizer& tokenizer, std::span<const int64_t> prompt,
                        const GenerateParams& params, const GenerateCallbacks& cb) {
  using Clock = std::chrono::steady_clock;
  if (tokenizer.vocab_size() > session.vocab_size())
    throw Error("tokenizer vocabulary (" + std::to_string(tokenizer.vocab_size()) + ") exceeds the model's vocab_size (" +
                std::to_string(session.vocab_size()) + ")");
  GenerateResult r;
  r.stats.prompt_tokens = static_cast<int64_t>(prompt.size());

  Sampler sampler(session.vocab_size(), params.sampling);
  TokenHistory history(session.vocab_size());
  if (params.sampling.repetition_penalty != 1.0f) {
    std::vector<int32_t> p32(prompt.begin(), prompt.end());
    history.add_prompt(p32);
  }
  StopStringMatcher stops(params.stop);
  chat::StreamingParser parser(params.mode);
  StreamDecoder decoder(tokenizer, /*skip_special=*/false);
  const int32_t eos = static_cast<int32_t>(session.model().config.eos_token_id);

  auto emit = [&](const std::vector<chat::StreamDelta>& deltas) {
    if (cb.on_delta)
      for (const auto& d : deltas) cb.on_delta(d);
  };
  // Text through stop strings, then the parser.
  auto push_text = [&](const std::string& piece) -> bool {
    StopStringMatcher::Result m = stops.feed(piece);
    if (!m.emit.empty()) {
      r.text += m.emit;
      emit(parser.feed(m.emit));
    }
    if (m.stopped) {
      r.finish = FinishReason::kStop;
      r.stop_index = m.stop_index;
      return false;
    }
    return true;
  };

  const auto t0 = Clock::now();
  Session::PrefillResult pre = session.prefill(prompt, cb.on_prefill_progress);
  r.stats.cached_tokens = pre.reused;
  if (params.checkpoint_after_prompt) session.checkpoint();
  const auto t1 = Clock::now();
  r.stats.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();

  std::span<const float> logits = pre.logits;
  const bool want_logprobs = params.sampling.logprobs || params.sampling.top_logprobs > 0;
  // One generated token through history, logprobs, the callback, EOS and the text path (the
  // same decisions for the plain and the speculative loop); false when generation ends.
  auto record_token = [&](const SampleResult& s) -> bool {
    const int32_t tok = s.token;
    r.tokens.push_back(tok);
    ++r.stats.generated_tokens;
    history.add_output(tok);
    if (want_logprobs) r.samples.push_back(s);
    if (cb.on_token) cb.on_token(tok, s);
    const bool is_eos = tok == eos && !params.ignore_eos;
    if (!push_text(decoder.push(tok))) return false;
    if (is_eos) {
      r.finish = FinishReason::kEos;
      return false;
    }
    return true;
  };
  bool running = true;
  r.finish = FinishReason::kLength;
  if (params.spec_draft > 0) {
    // Speculative decoding: the same per-token decisions as the plain loop below (history,
    // logprobs, stop strings, EOS, context and max_tokens limits), several tokens per pass.
    SpeculativeDecoder spec(session, sampler, &history, params.spec_draft);
    spec.set_min_acceptance(params.spec_min_acceptance);
    const int64_t n_prompt = static_cast<int64_t>(prompt.size());
    auto take = [&](const SampleResult& s) -> bool {
      if (!record_token(s)) return false;
      // The plain loop's session holds the prompt and every generated token but this one.
      if (n_prompt + r.stats.generated_tokens - 1 >= session.context()) {
        r.finish = FinishReason::kLength;
        return false;
      }
      if (params.max_tokens >= 0 && r.stats.generated_tokens >= params.max_tokens) {
        r.finish = FinishReason::kLength;
        return false;
      }
      return true;
    };
    SpecHooks hooks;
    hooks.commit = take;
    running = params.max_tokens != 0 && !(cb.should_stop && cb.should_stop());
    if (!running) r.finish = params.max_tokens == 0 ? FinishReason::kLength : FinishReason::kCancelled;
    int32_t pending = -1;
    if (running) {
      const SampleResult s = sampler.sample(logits, &history);
      pending = s.token;
      running = take(s);
    }
    while (running) {
      if (cb.should_stop && cb.should_stop()) {
        r.finish = FinishReason::kCancelled;
        break;
      }
      const int64_t left = params.max_tokens >= 0 ? params.max_tokens - r.stats.generated_tokens : session.context();
      const SpeculativeDecoder::StepResult st = spec.step(pending, left, hooks);
      running = st.running;
      pending = st.pending;
    }
    r.stats.spec_steps = spec.stats().steps;
    r.stats.drafted_tokens = spec.stats().drafted;
    r.stats.accepted_tokens = spec.stats().accepted;
    running = false;
  }
  while (running) {
    if (params.max_tokens >= 0 && r.stats.generated_tokens >= params.max_tokens) {
      r.finish = FinishReason::kLength;
      break;
    }
    if (cb.should_stop && cb.should_stop()) {
      r.finish = FinishReason::kCancelled;
      break;
    }
    const SampleResult s = sampler.sample(logits, &history);
    if (!record_token(s)) break;
    if (session.size() >= session.context()) {
      r.finish = FinishReason::kLength;
      break;
    }
    logits = session.step(s.token);
  }
  // Flush held-back text (incomplete UTF-8, partial stop-string prefixes) unless a stop hit.
  if (r.finish != FinishReason::kStop) {
    std::string tail = decoder.flush();
    StopStringMatcher::Result m = stops.feed(tail);
    std::string rest = m.emit;
    if (m.stopped) {
      r.finish = FinishReason::kStop;
      r.stop_index = m.stop_index;
    } else {
      rest += stops.flush();
    }
    if (!rest.empty()) {
      r.text += rest;
      emit(parser.feed(rest));
    }
  }
  emit(parser.finish());
  r.message = parser.message();
  r.stats.decode_seconds = std::chrono::duration<double>(Clock::now() - t1).count();
  return r;
}

}  // namespace dsv4
