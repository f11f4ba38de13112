#include "frontends/server/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <limits>

#include "engine/speculative.h"
#include "engine/stop_strings.h"
#include "frontends/server/api_error.h"

namespace dsv4::server {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

bool Job::wait_events(std::vector<JobEvent>& out, int ms) {
  std::unique_lock lock(mu);
  if (events.empty() && !finished) cv.wait_for(lock, std::chrono::milliseconds(ms), [&] { return !events.empty() || finished; });
  while (!events.empty()) {
    out.push_back(std::move(events.front()));
    events.pop_front();
  }
  return finished;
}

struct Scheduler::Slot {
  std::shared_ptr<Job> job;
  std::unique_ptr<Session> session;
  std::unique_ptr<Sampler> sampler;
  std::unique_ptr<TokenHistory> history;
  std::unique_ptr<StopStringMatcher> stops;
  std::unique_ptr<chat::StreamingParser> parser;
  std::unique_ptr<StreamDecoder> decoder;
  std::unique_ptr<TokenConstraint> constraint;
  bool constraint_waiting = false;  // created once the answer part starts
  std::span<const float> logits;
  std::vector<float> masked;
  std::unique_ptr<SpeculativeDecoder> spec;  // MTP speculative decoding (null: off for this job)
  SpecHooks hooks;                           // its per-token hooks (prepare_logits, commit_token)
  int32_t pending = -1;  // sampled, not yet run through the model
  int64_t step_token = -1;  // the token of this slot in the current batched step
  bool done = false;
  // Chunked prefill: prompt tokens [0, prefill_done) are in the session; while prefilling the
  // slot takes prompt chunks in the batched steps instead of sampling.
  bool prefilling = false;
  int64_t prefill_done = 0;
  int64_t step_chunk = 0;  // prompt tokens of this slot in the current batched step
  uint64_t admission = 0;  // admission order (older prefills get the chunk budget first)
  JobResult r;
  Clock::time_point t_admit = Clock::now(), t_decode = t_admit;
};

bool answer_started(const JobSpec& spec, const chat::StreamingParser* parser) {
  return !parser || spec.mode == chat::ThinkingMode::Chat || parser->message().saw_think_end;
}

Scheduler::Scheduler(std::shared_ptr<const ModelWeights> model, std::shared_ptr<const Tokenizer> tokenizer,
                     SchedulerOptions options, Metrics& metrics)
    : model_(std::move(model)),
      tok_(std::move(tokenizer)),
      options_(options),
      metrics_(metrics),
      cache_(model_, options.session, options.cache_budget_bytes, options.cache_disk) {
  if (options_.parallel < 1) options_.parallel = 1;
  eos_ = static_cast<int32_t>(model_->config.eos_token_id);
  table_ = TokenTable::build(*tok_, eos_, model_->config.vocab_size);
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  shutdown();
  if (thread_.joinable()) thread_.join();
}

void Scheduler::stop_and_persist() {
  shutdown();
  if (thread_.joinable()) thread_.join();
  cache_.persist();
}

int64_t Scheduler::context() const {
  return options_.session.context > 0 ? options_.session.context : model_->config.max_position_embeddings;
}

int64_t Scheduler::queued() const {
  std::lock_guard lock(mu_);
  return static_cast<int64_t>(queue_.size());
}

void Scheduler::submit(const std::shared_ptr<Job>& job) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) throw ApiError(503, "the server is shutting down", "server_error", "", "service_unavailable");
    if (static_cast<int>(queue_.size()) >= options_.max_queue)
      throw ApiError(503, "the server is overloaded (request queue full); retry later", "server_error", "", "overloaded");
    job->submitted = Clock::now();
    queue_.push_back(job);
  }
  cv_.notify_one();
}

void Scheduler::shutdown() {
  std::deque<std::shared_ptr<Job>> dropped;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    dropped.swap(queue_);
  }
  for (auto& j : dropped) {
    std::lock_guard lk(j->mu);
    j->error = "the server is shutting down";
    j->finished = true;
    j->cv.notify_all();
  }
  cv_.notify_one();
}

bool Scheduler::admit(Slot& slot, std::shared_ptr<Job> job) {
  slot = Slot{};
  slot.job = std::move(job);
  const JobSpec& spec = slot.job->spec;
  {
    std::lock_guard lk(slot.job->mu);
    slot.job->started = true;
  }
  slot.t_admit = Clock::now();
  slot.r.queue_seconds = std::chrono::duration<double>(slot.t_admit - slot.job->submitted).count();
  try {
    if (static_cast<int64_t>(spec.prompt.size()) >= context())
      throw Error("prompt of " + std::to_string(spec.prompt.size()) + " tokens does not fit the context of " + std::to_string(context()));
    PrefixCache::Lease lease = cache_.acquire(spec.prompt);
    slot.session = std::move(lease.session);
    // Reuse what the cached session shares with the prompt; the rest is prefilled in chunks by
    // the batched steps (decode_step).
    slot.prefill_done = slot.session->reuse_prefix(spec.prompt);
    slot.prefilling = true;
    slot.admission = admissions_++;
    slot.r.prompt_tokens = static_cast<int64_t>(spec.prompt.size());
    slot.r.cached_tokens = slot.prefill_done;
    if (lease.from_disk) cache_.note_disk_reuse(slot.prefill_done);
    slot.sampler = std::make_unique<Sampler>(slot.session->vocab_size(), spec.sampling);
    slot.history = std::make_unique<TokenHistory>(slot.session->vocab_size());
    if (spec.sampling.repetition_penalty != 1.0f) {
      std::vector<int32_t> p32(spec.prompt.begin(), spec.prompt.end());
      slot.history->add_prompt(p32);
    }
    slot.stops = std::make_unique<StopStringMatcher>(spec.stop);
    if (spec.parse_chat) slot.parser = std::make_unique<chat::StreamingParser>(spec.mode);
    slot.decoder = std::make_unique<StreamDecoder>(*tok_, false);
    slot.constraint_waiting = spec.json || !spec.forced_tools.empty();
    // Speculation: greedy jobs always (the output cannot change), sampled ones only when asked
    // (their seeds then draw a different, equally distributed stream than without it).
    const bool greedy = spec.sampling.temperature < kGreedyTemperature;
    if (options_.spec_draft > 0 && slot.session->has_mtp() && (greedy || options_.spec_sampled) &&
        slot.session->options().rewind_horizon >= options_.spec_draft) {
      slot.spec = std::make_unique<SpeculativeDecoder>(*slot.session, *slot.sampler, slot.history.get(), options_.spec_draft);
      slot.spec->set_min_acceptance(options_.spec_min_acceptance);
      Slot* sp = &slot;
      slot.hooks.prepare = [this, sp](std::span<const float> raw) { return prepare_logits(*sp, raw); };
      slot.hooks.commit = [this, sp](const SampleResult& s) { return commit_token(*sp, s); };
    }
  } catch (const std::exception& e) {
    if (slot.session) cache_.release(std::move(slot.session));
    std::lock_guard lk(slot.job->mu);
    slot.job->error = e.what();
    slot.job->finished = true;
    slot.job->cv.notify_all();
    return false;
  }
  metrics_.prompt_tokens += static_cast<uint64_t>(slot.r.prompt_tokens);
  metrics_.prompt_cache_hit_tokens += static_cast<uint64_t>(slot.r.cached_tokens);
  return true;
}

std::span<const float> Scheduler::prepare_logits(Slot& slot, std::span<const float> logits) {
  const JobSpec& spec = slot.job->spec;
  // The constraint applies to the answer: in thinking mode only after "</think>".
  if (slot.constraint_waiting) {
    if (answer_started(spec, slot.parser.get())) {
      slot.constraint_waiting = false;
      if (spec.json) slot.constraint = std::make_unique<JsonConstraint>(table_, spec.json_schema);
      else slot.constraint = std::make_unique<ToolCallConstraint>(table_, *tok_, spec.forced_tools);
    }
  }
  if (slot.constraint) {
    slot.masked.assign(logits.begin(), logits.end());
    if (slot.constraint->mask(slot.masked) == 0) {
      slot.r.finish = FinishReason::kStop;
      slot.done = true;
      return {};
    }
    return slot.masked;
  }
  if (slot.constraint_waiting && eos_ >= 0 && static_cast<size_t>(eos_) < logits.size()) {
    // Still reasoning before a required tool call / JSON answer: the turn may not end here.
    slot.masked.assign(logits.begin(), logits.end());
    slot.masked[static_cast<size_t>(eos_)] = -std::numeric_limits<float>::infinity();
    return slot.masked;
  }
  return logits;
}

void Scheduler::sample_slot(Slot& slot) {
  Job& job = *slot.job;
  JobResult& r = slot.r;
  auto finish = [&](FinishReason f) {
    r.finish = f;
    slot.done = true;
  };
  if (job.cancelled.load()) return finish(FinishReason::kCancelled);
  if (r.generated_tokens >= job.spec.max_tokens) return finish(FinishReason::kLength);
  std::span<const float> logits = prepare_logits(slot, slot.logits);
  if (logits.empty()) return;
  commit_token(slot, slot.sampler->sample(logits, slot.history.get()));
}

bool Scheduler::commit_token(Slot& slot, const SampleResult& s) {
  Job& job = *slot.job;
  const JobSpec& spec = job.spec;
  JobResult& r = slot.r;
  std::vector<JobEvent> out;
  auto finish = [&](FinishReason f) {
    r.finish = f;
    slot.done = true;
  };
  const bool in_reasoning = slot.parser && spec.mode == chat::ThinkingMode::Thinking &&
                            !slot.parser->message().saw_think_end && slot.parser->message().tool_calls.empty();
  const int32_t tok = s.token;
  if (slot.constraint) {
    slot.constraint->accept(tok);
  }
  r.tokens.push_back(tok);
  ++r.generated_tokens;
  if (in_reasoning) ++r.reasoning_tokens;
  slot.history->add_output(tok);
  if (spec.want_logprobs) {
    r.samples.push_back(s);
    JobEvent ev(JobEvent::Kind::Token);
    ev.token = tok;
    ev.sample = s;
    out.push_back(std::move(ev));
  }
  auto push_deltas = [&](std::vector<chat::StreamDelta> ds) {
    for (auto& d : ds) {
      JobEvent ev(JobEvent::Kind::Delta, std::move(d));
      out.push_back(std::move(ev));
    }
  };
  auto push_text = [&](const std::string& text) {
    if (text.empty()) return;
    r.text += text;
    if (slot.parser) push_deltas(slot.parser->feed(text));
    else push_deltas({chat::StreamDelta{chat::StreamDelta::Kind::Content, text, -1}});
  };
  const std::string piece = slot.decoder->push(tok);
  StopStringMatcher::Result m = slot.stops->feed(piece);
  push_text(m.emit);
  if (m.stopped) {
    finish(FinishReason::kStop);
    r.stop_index = m.stop_index;
  }
  else if (tok == eos_) finish(FinishReason::kEos);
  // (the session of a plain decode holds the prompt and every generated token but this one)
  else if (r.prompt_tokens + r.generated_tokens - 1 >= slot.session->context()) finish(FinishReason::kLength);
  else slot.pending = tok;
  if (slot.done && r.finish != FinishReason::kStop) {
    // Release held-back text (partial UTF-8, a partial stop string) at the end.
    std::string tail = slot.decoder->flush();
    StopStringMatcher::Result m2 = slot.stops->feed(tail);
    std::string rest = m2.emit;
    if (m2.stopped) {
      r.finish = FinishReason::kStop;
      r.stop_index = m2.stop_index;
    }
    else rest += slot.stops->flush();
    push_text(rest);
  }
  if (!out.empty()) {
    std::lock_guard lk(job.mu);
    for (auto& e : out) job.events.push_back(std::move(e));
    job.cv.notify_all();
  }
  return !slot.done && r.generated_tokens < spec.max_tokens;
}

void Scheduler::spec_step(Slot& slot) {
  const int64_t left = slot.job->spec.max_tokens - slot.r.generated_tokens;
  if (left < 1) {
    // The pending token was the last one max_tokens allows (sampled from the prefill or a
    // batched step's logits): the job ends here, as sample_slot would end it.
    slot.pending = -1;
    slot.r.finish = FinishReason::kLength;
    slot.done = true;
    return;
  }
  const auto t0 = Clock::now();
  const SpecStats before = slot.spec->stats();
  try {
    const SpeculativeDecoder::StepResult res =
        slot.spec->step(slot.pending, left, slot.hooks);
    slot.pending = res.running ? res.pending : -1;
    if (!res.running && !slot.done) {
      // Stopped by max_tokens (commit_token's limit): what sample_slot would find next.
      slot.r.finish = FinishReason::kLength;
      slot.done = true;
    }
  } catch (const std::exception& e) {
    slot.session->reset();  // never cache a half-rolled-back state
    std::lock_guard lk(slot.job->mu);
    slot.job->error = e.what();
    slot.done = true;
  }
  const SpecStats& after = slot.spec->stats();
  slot.r.drafted_tokens = after.drafted;
  slot.r.accepted_tokens = after.accepted;
  metrics_.spec_drafted += static_cast<uint64_t>(after.drafted - before.drafted);
  metrics_.spec_accepted += static_cast<uint64_t>(after.accepted - before.accepted);
  ++metrics_.decode_steps;
  ++metrics_.decode_step_sequences;
  metrics_.decode_micros += static_cast<uint64_t>(seconds_since(t0) * 1e6);
}

void Scheduler::finish_slot(Slot& slot) {
  Job& job = *slot.job;
  JobResult& r = slot.r;
  if (slot.done && r.finish == FinishReason::kLength && r.generated_tokens < job.spec.max_tokens && !r.tokens.empty()) {
    // context full: nothing to do, finish stays "length"
  }
  // A cancellation between sampling and here still flushes held text.
  std::vector<JobEvent> out;
  if (r.finish == FinishReason::kCancelled || r.finish == FinishReason::kLength) {
    std::string tail = slot.decoder ? slot.decoder->flush() : std::string();
    if (slot.stops) {
      StopStringMatcher::Result m = slot.stops->feed(tail);
      tail = m.emit + (m.stopped ? std::string() : slot.stops->flush());
    }
    if (!tail.empty()) {
      r.text += tail;
      std::vector<chat::StreamDelta> ds = slot.parser ? slot.parser->feed(tail)
                                                       : std::vector<chat::StreamDelta>{{chat::StreamDelta::Kind::Content, tail, -1}};
      for (auto& d : ds) out.push_back(JobEvent(JobEvent::Kind::Delta, std::move(d)));
    }
  }
  if (slot.parser) {
    for (auto& d : slot.parser->finish()) out.push_back(JobEvent(JobEvent::Kind::Delta, std::move(d)));
    r.message = slot.parser->message();
  } else {
    r.message.content = r.text;
    out.push_back(JobEvent(JobEvent::Kind::Delta, chat::StreamDelta{chat::StreamDelta::Kind::Done, {}, -1}));
  }
  if (slot.prefilling) {
    // Ended (cancelled, failed) before its prompt was in: all of its time was prefill.
    r.prefill_seconds = seconds_since(slot.t_admit);
    r.decode_seconds = 0;
  } else {
    r.decode_seconds = seconds_since(slot.t_decode);
  }
  // The next request of a tool loop replays this turn (with EOS): run the tokens the session
  // has not seen yet so the cache holds the whole exchange.
  if (slot.session && job.spec.complete_turn_for_cache && !r.message.tool_calls.empty() &&
      r.finish != FinishReason::kCancelled) {
    std::vector<int64_t> tail;
    if (!r.tokens.empty()) tail.push_back(r.tokens.back());
    if (r.tokens.empty() || r.tokens.back() != eos_) tail.push_back(eos_);
    try {
      if (slot.session->size() + static_cast<int64_t>(tail.size()) <= slot.session->context()) slot.session->append(tail);
    } catch (const std::exception&) {
      // the cache entry just stays shorter
    }
  }
  if (slot.session) cache_.release(std::move(slot.session));
  metrics_.generated_tokens += static_cast<uint64_t>(r.generated_tokens);
  if (r.finish == FinishReason::kCancelled) ++metrics_.requests_cancelled;
  {
    std::lock_guard lk(job.mu);
    for (auto& e : out) job.events.push_back(std::move(e));
    job.result = std::move(r);
    job.finished = true;
  }
  job.cv.notify_all();
  slot = Slot{};
}

void Scheduler::decode_step(const std::vector<Slot*>& decoding, const std::vector<Slot*>& prefilling) {
  if (decoding.empty() && prefilling.empty()) return;
  const auto t0 = Clock::now();
  step_items_.clear();
  step_slots_.clear();
  auto fail = [](Slot& s, const std::string& what) {
    std::lock_guard lk(s.job->mu);
    s.job->error = what;
    s.done = true;
  };
  // Decode: the pending token of every running slot.
  int64_t n_decode = 0;
  for (Slot* s : decoding) {
    s->step_token = s->pending;
    s->pending = -1;
    s->step_chunk = 0;
    const std::span<const int64_t> tok(&s->step_token, 1);
    try {
      s->session->check_append(tok);
    } catch (const std::exception& e) {
      fail(*s, e.what());
      continue;
    }
    step_items_.push_back(SessionAppend{s->session.get(), tok});
    step_slots_.push_back(s);
    ++n_decode;
  }
  // Prefill: chunks of the prefilling slots, oldest admission first, within the budget.
  int64_t budget = std::max<int64_t>(1, options_.session.prefill_chunk);
  for (Slot* s : prefilling) {
    s->step_chunk = 0;
    if (budget == 0) continue;
    const std::vector<int64_t>& prompt = s->job->spec.prompt;
    const int64_t m = std::min<int64_t>(budget, static_cast<int64_t>(prompt.size()) - s->prefill_done);
    const std::span<const int64_t> chunk(prompt.data() + s->prefill_done, static_cast<size_t>(m));
    try {
      s->session->check_append(chunk);
    } catch (const std::exception& e) {
      fail(*s, e.what());
      continue;
    }
    budget -= m;
    s->step_chunk = m;
    step_items_.push_back(SessionAppend{s->session.get(), chunk});
    step_slots_.push_back(s);
  }
  if (step_items_.empty()) return;
  try {
    Session::append_batch(step_items_, batch_ws_);
  } catch (const std::exception& e) {
    // The sessions of the batch were reset: every job in it fails.
    for (Slot* s : step_slots_) fail(*s, e.what());
    return;
  }
  const double seconds = seconds_since(t0);
  for (Slot* s : step_slots_) {
    if (!s->prefilling) {
      s->logits = s->session->last_logits();
      continue;
    }
    s->prefill_done += s->step_chunk;
    if (s->prefill_done == static_cast<int64_t>(s->job->spec.prompt.size())) {
      s->prefilling = false;
      s->session->checkpoint();
      s->logits = s->session->last_logits();
      s->r.prefill_seconds = seconds_since(s->t_admit);
      s->t_decode = Clock::now();
      metrics_.prefill_micros += static_cast<uint64_t>(s->r.prefill_seconds * 1e6);
    }
  }
  if (n_decode > 0) {
    ++metrics_.decode_steps;
    metrics_.decode_step_sequences += static_cast<uint64_t>(n_decode);
    metrics_.decode_micros += static_cast<uint64_t>(seconds * 1e6);
  }
}

void Scheduler::loop() {
  std::vector<Slot> slots(static_cast<size_t>(options_.parallel));
  std::vector<uint8_t> busy(slots.size(), 0);
  std::vector<Slot*> decoding, prefilling;
  decoding.reserve(slots.size());
  prefilling.reserve(slots.size());
  for (;;) {
    std::vector<std::shared_ptr<Job>> admitted;
    bool stopping = false;
    {
      std::unique_lock lock(mu_);
      const bool any_busy = active_.load() > 0;
      if (!any_busy) cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_ && active_.load() == 0 && queue_.empty()) break;
      stopping = stopping_;
      int free_slots = options_.parallel - static_cast<int>(active_.load());
      while (free_slots > 0 && !queue_.empty()) {
        admitted.push_back(std::move(queue_.front()));
        queue_.pop_front();
        --free_slots;
      }
    }
    if (stopping)
      for (size_t i = 0; i < slots.size(); ++i)
        if (busy[i]) slots[i].job->cancelled = true;
    for (auto& job : admitted) {
      size_t i = 0;
      while (busy[i]) ++i;
      if (job->cancelled.load()) {
        // The client left while queued: nothing to compute.
        slots[i] = Slot{};
        slots[i].job = job;
        slots[i].r.finish = FinishReason::kCancelled;
        slots[i].r.prompt_tokens = static_cast<int64_t>(job->spec.prompt.size());
        finish_slot(slots[i]);
        continue;
      }
      if (admit(slots[i], job)) {
        busy[i] = 1;
        ++active_;
      }
    }
    decoding.clear();
    prefilling.clear();
    for (size_t i = 0; i < slots.size(); ++i) {
      if (!busy[i]) continue;
      Slot& slot = slots[i];
      try {
        if (slot.done) {
        } else if (slot.prefilling) {
          if (slot.job->cancelled.load()) {
            slot.r.finish = FinishReason::kCancelled;
            slot.done = true;
          }
        } else if (slot.pending >= 0) {
          // A speculative step already chose the next token.
          if (slot.job->cancelled.load()) {
            slot.r.finish = FinishReason::kCancelled;
            slot.done = true;
          }
        } else {
          sample_slot(slot);
        }
      } catch (const std::exception& e) {
        std::lock_guard lk(slot.job->mu);
        slot.job->error = e.what();
        slot.done = true;
      }
      if (slot.done) {
        finish_slot(slot);
        busy[i] = 0;
        --active_;
      } else if (slot.prefilling) {
        prefilling.push_back(&slot);
      } else {
        decoding.push_back(&slot);
      }
    }
    std::sort(prefilling.begin(), prefilling.end(), [](const Slot* a, const Slot* b) { return a->admission < b->admission; });
    if (decoding.size() == 1 && prefilling.empty() && decoding[0]->spec)
      spec_step(*decoding[0]);
    else
      decode_step(decoding, prefilling);
  }
}

}  // namespace dsv4::server
