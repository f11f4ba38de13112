#include "engine/batch_generate.h"

#include <algorithm>
#include <optional>
#include <string>

#include "base/error.h"
#include "engine/session.h"

namespace dsv4 {
namespace {

bool has_penalties(const SamplingParams& p) {
  return p.repetition_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f;
}

// One sequence in flight.
struct Slot {
  size_t index = 0;
  std::unique_ptr<Session> session;
  std::optional<Sampler> sampler;
  std::optional<TokenHistory> history;
  int64_t prefilled = 0;  // prompt tokens appended so far
  int64_t pending = -1;   // sampled token still to append (decode phase)
  bool done = false;
};

}  // namespace

std::vector<BatchCompletion> batch_generate(std::shared_ptr<const ModelWeights> model, std::span<const BatchPrompt> prompts,
                                            const BatchGenerateOptions& opt) {
  if (!model) throw Error("batch_generate: no model");
  if (opt.max_sequences < 1) throw Error("batch_generate: max_sequences must be >= 1");
  if (opt.max_batch_tokens < 1) throw Error("batch_generate: max_batch_tokens must be >= 1");
  if (opt.prefill_chunk < 1) throw Error("batch_generate: prefill_chunk must be >= 1");
  const ModelConfig& c = model->config;
  const int64_t V = c.vocab_size;
  const int64_t model_max = c.max_position_embeddings > 0 ? c.max_position_embeddings : 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const BatchPrompt& p = prompts[i];
    auto who = [i] { return "batch_generate: prompt " + std::to_string(i) + ": "; };
    if (p.tokens.empty()) throw Error(who() + "empty prompt");
    if (p.max_tokens < 0) throw Error(who() + "max_tokens must be >= 0");
    for (size_t j = 0; j < p.tokens.size(); ++j)
      if (p.tokens[j] < 0 || p.tokens[j] >= V)
        throw Error(who() + "token " + std::to_string(j) + " = " + std::to_string(p.tokens[j]) + " outside the vocabulary [0, " +
                    std::to_string(V) + ")");
    for (int64_t t : p.stop_tokens)
      if (t < 0 || t >= V) throw Error(who() + "stop token " + std::to_string(t) + " outside the vocabulary");
    if (model_max > 0 && static_cast<int64_t>(p.tokens.size()) > model_max)
      throw Error(who() + std::to_string(p.tokens.size()) + " tokens exceed the model's context of " + std::to_string(model_max));
    try {
      validate(p.sampling);
    } catch (const Error& e) {
      throw Error(who() + e.what());
    }
  }

  std::vector<BatchCompletion> out(prompts.size());
  const int64_t eos = c.eos_token_id;
  size_t next = 0, finished = 0;
  std::vector<Slot> active;
  BatchWorkspace ws;
  std::vector<SessionAppend> items;
  std::vector<size_t> item_slot;

  auto finish = [&](Slot& s, FinishReason r) {
    out[s.index].finish = r;
    s.done = true;
    s.session.reset();
    ++finished;
    if (opt.on_finished) opt.on_finished(s.index, finished);
  };
  // Samples the next token of slot s from its session's last logits; decides whether it ends.
  auto sample = [&](Slot& s) {
    const BatchPrompt& p = prompts[s.index];
    BatchCompletion& o = out[s.index];
    const SampleResult r = s.sampler->sample(s.session->last_logits(), s.history ? &*s.history : nullptr);
    o.tokens.push_back(r.token);
    o.logprobs.push_back(static_cast<float>(s.sampler->sampling_logprob(r.token)));
    o.model_logprobs.push_back(r.logprob);
    if (s.history) s.history->add_output(r.token);
    if (r.token == eos && !p.ignore_eos) return finish(s, FinishReason::kEos);
    const auto st = std::find(p.stop_tokens.begin(), p.stop_tokens.end(), static_cast<int64_t>(r.token));
    if (st != p.stop_tokens.end()) {
      o.stop_index = static_cast<int>(st - p.stop_tokens.begin());
      return finish(s, FinishReason::kStop);
    }
    if (static_cast<int64_t>(o.tokens.size()) >= p.max_tokens || s.session->size() >= s.session->context())
      return finish(s, FinishReason::kLength);
    s.pending = r.token;
  };

  while (next < prompts.size() || !active.empty()) {
    // Admit new sequences.
    while (static_cast<int64_t>(active.size()) < opt.max_sequences && next < prompts.size()) {
      const BatchPrompt& p = prompts[next];
      if (p.max_tokens == 0) {
        Slot s;
        s.index = next++;
        finish(s, FinishReason::kLength);
        continue;
      }
      Slot s;
      s.index = next++;
      SessionOptions so;
      so.numerics = opt.numerics;
      so.rewind_horizon = 0;
      so.prefill_chunk = opt.prefill_chunk;
      int64_t ctx = static_cast<int64_t>(p.tokens.size()) + p.max_tokens;
      if (model_max > 0) ctx = std::min(ctx, model_max);
      so.context = ctx;
      s.session = std::make_unique<Session>(model, so);
      SamplingParams sp = p.sampling;
      sp.logprobs = true;
      s.sampler.emplace(V, sp);
      if (has_penalties(sp)) {
        s.history.emplace(V);
        std::vector<int32_t> p32(p.tokens.begin(), p.tokens.end());
        s.history->add_prompt(p32);
      }
      active.push_back(std::move(s));
    }
    if (active.empty()) break;

    // One forward pass: every decode step, then prompt chunks within the token budget.
    items.clear();
    item_slot.clear();
    int64_t budget = opt.max_batch_tokens;
    for (size_t k = 0; k < active.size(); ++k) {
      Slot& s = active[k];
      if (s.pending < 0) continue;
      items.push_back(SessionAppend{s.session.get(), std::span<const int64_t>(&s.pending, 1)});
      item_slot.push_back(k);
      --budget;
    }
    for (size_t k = 0; k < active.size(); ++k) {
      Slot& s = active[k];
      const BatchPrompt& p = prompts[s.index];
      const int64_t left = static_cast<int64_t>(p.tokens.size()) - s.prefilled;
      if (s.pending >= 0 || left == 0) continue;
      if (budget <= 0 && !items.empty()) break;
      const int64_t n = std::min({left, opt.prefill_chunk, std::max<int64_t>(budget, 1)});
      items.push_back(SessionAppend{s.session.get(), std::span<const int64_t>(p.tokens.data() + s.prefilled, static_cast<size_t>(n))});
      item_slot.push_back(k);
      budget -= n;
    }
    Session::append_batch(items, ws);

    for (size_t j = 0; j < items.size(); ++j) {
      Slot& s = active[item_slot[j]];
      if (s.pending >= 0) {
        s.pending = -1;
        sample(s);
      } else {
        s.prefilled += static_cast<int64_t>(items[j].tokens.size());
        if (s.prefilled == static_cast<int64_t>(prompts[s.index].tokens.size())) sample(s);
      }
    }
    active.erase(std::remove_if(active.begin(), active.end(), [](const Slot& s) { return s.done; }), active.end());
  }
  return out;
}

}  // namespace dsv4
