// Scheduler: runs generation jobs on up to `parallel` slots with continuous batching.
//
// One scheduler thread owns the model work. Each iteration:
//   1. admits queued jobs into free slots (prefix-cache lookup and prefix reuse; no model work);
//   2. samples the next token of every decoding slot from its logits (constraints, stop
//      strings, the streaming output parser, events to the waiting HTTP handler);
//   3. retires finished or cancelled slots (their sessions go back to the prefix cache);
//   4. decode_step(): ONE batched forward pass (Session::append_batch) over the pending token
//      of every decoding slot plus the next prefill chunk(s) of newly admitted slots, at most
//      SessionOptions::prefill_chunk prompt tokens per iteration (oldest admission first).
//      Speculative decoding (SchedulerOptions::spec_draft > 0, sessions with the MTP block):
//      when the step would advance exactly ONE decoding sequence and no prefill chunk, that
//      slot runs a speculative step instead (MTP drafts + one verify pass, several tokens
//      committed through the same per-token path as sample_slot). Rule: with two or more
//      sequences in a step the batch already shares the weight reads among them (decode moves
//      towards compute-bound), and a per-slot verify pass would give that up, so drafting is
//      off; it also stops for a job whose drafts are accepted less than
//      spec_min_acceptance of the time (SpeculativeDecoder::set_min_acceptance).
// Jobs join and leave between steps, and a long prompt is prefilled in chunks interleaved with
// the running slots' decode steps, so a long prefill never stalls the running streams for more
// than one chunk. The batched forward is batch-invariant: every job gets the tokens it would
// get alone (fixed seeds reproduce across --parallel settings).
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/constraint.h"
#include "engine/generate.h"
#include "engine/sampler.h"
#include "engine/speculative.h"
#include "engine/tool_call_constraint.h"
#include "frontends/server/metrics.h"
#include "frontends/server/prefix_cache.h"
#include "text/output_parser.h"
#include "text/tokenizer.h"

namespace dsv4::server {

struct JobSpec {
  std::vector<int64_t> prompt;
  SamplingParams sampling;
  int64_t max_tokens = 16;
  std::vector<std::string> stop;
  bool parse_chat = true;  // false: raw completion, all text is content
  chat::ThinkingMode mode = chat::ThinkingMode::Thinking;
  // tool_choice required / named: once the answer part starts, the output is one complete
  // DSML call to one of these tools (ToolCallConstraint), then EOS.
  std::vector<ToolSchema> forced_tools;
  bool json = false;             // response_format json_object / json_schema
  json_py::Json json_schema;     // null: any object
  bool want_logprobs = false;
  // Tool-call turns are usually replayed by the next request; stepping the final token(s)
  // before caching the session lets that request reuse the whole exchange.
  bool complete_turn_for_cache = false;
};

struct JobEvent {
  enum class Kind { Delta, Token };
  explicit JobEvent(Kind k) : kind(k) {}
  JobEvent(Kind k, chat::StreamDelta d) : kind(k), delta(std::move(d)) {}
  Kind kind;
  chat::StreamDelta delta{chat::StreamDelta::Kind::Done, {}, -1};
  int32_t token = -1;  // Token events: the sampled id and its logprobs
  SampleResult sample;
};

struct JobResult {
  std::string text;  // completion text (special tokens as text)
  chat::ParsedMessage message;
  std::vector<int32_t> tokens;
  std::vector<SampleResult> samples;
  FinishReason finish = FinishReason::kLength;
  int stop_index = -1;  // which stop string matched (finish == kStop)
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;
  int64_t generated_tokens = 0;
  int64_t reasoning_tokens = 0;
  int64_t drafted_tokens = 0;   // speculative decoding: tokens the MTP block drafted
  int64_t accepted_tokens = 0;  // and the drafted tokens kept
  double queue_seconds = 0, prefill_seconds = 0, decode_seconds = 0;
};

// Whether a job's answer constraint (the forced tool call of tool_choice required /
// named, the JSON automaton of response_format) applies from the next token on: at once in
// chat mode and for raw completions (no parser), in thinking mode only once the output has
// closed its reasoning with "</think>" (the model reasons first).
bool answer_started(const JobSpec& spec, const chat::StreamingParser* parser);

class Job {
 public:
  explicit Job(JobSpec s) : spec(std::move(s)) {}
  JobSpec spec;
  std::string id;
  std::atomic<bool> cancelled{false};
  std::chrono::steady_clock::time_point submitted;  // set by Scheduler::submit

  // Filled by the scheduler thread, read by the handler thread under `mu`.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<JobEvent> events;
  bool started = false;
  bool finished = false;
  std::string error;  // non-empty: the job failed (an internal error)
  JobResult result;

  // Handler side: waits up to `ms` for events or the end; moves pending events into `out`.
  // Returns true when the job has finished (and every event has been taken).
  bool wait_events(std::vector<JobEvent>& out, int ms);
};

struct SchedulerOptions {
  int parallel = 4;
  int max_queue = 256;
  SessionOptions session;
  size_t cache_budget_bytes = size_t(1) << 30;
  PrefixCacheDiskOptions cache_disk;  // disk tier of the prefix cache (dir empty: none)
  int spec_draft = 0;                 // MTP speculative decoding: tokens drafted per step (0: off; needs session.mtp)
  double spec_min_acceptance = 0.0;   // stop drafting for a job below this acceptance (0: never)
  bool spec_sampled = false;          // also for sampled jobs (else greedy jobs only)
};

class Scheduler {
 public:
  Scheduler(std::shared_ptr<const ModelWeights> model, std::shared_ptr<const Tokenizer> tokenizer,
            SchedulerOptions options, Metrics& metrics);
  ~Scheduler();

  // Queues a job; throws ApiError 503 when the queue is full or the server is stopping.
  void submit(const std::shared_ptr<Job>& job);
  // Stops accepting work; cancels queued jobs and finishes running ones as cancelled.
  void shutdown();
  // shutdown(), waits for the scheduler thread to finish (every session back in the cache),
  // then writes the prefix cache to its disk tier. Idempotent.
  void stop_and_persist();

  int64_t active() const { return active_.load(); }
  int64_t queued() const;
  int parallel() const { return options_.parallel; }
  int64_t context() const;
  const PrefixCache& cache() const { return cache_; }
  std::shared_ptr<const TokenTable> token_table() const { return table_; }

  struct Slot;

 private:
  void loop();
  bool admit(Slot& slot, std::shared_ptr<Job> job);
  void sample_slot(Slot& slot);
  // The per-token halves of sample_slot (also the hooks of a speculative step): the logits the
  // sampler sees (constraint masks; empty = the job ends), and the commit of a chosen token
  // (history, constraint, events, stop strings, EOS, limits); false when the job is done.
  std::span<const float> prepare_logits(Slot& slot, std::span<const float> logits);
  bool commit_token(Slot& slot, const SampleResult& s);
  // One speculative step of a lone decoding slot.
  void spec_step(Slot& slot);
  void finish_slot(Slot& slot);
  // One batched forward: the pending token of every decoding slot and the next prefill
  // chunk(s) of the prefilling slots (oldest admission first).
  void decode_step(const std::vector<Slot*>& decoding, const std::vector<Slot*>& prefilling);

  std::shared_ptr<const ModelWeights> model_;
  std::shared_ptr<const Tokenizer> tok_;
  SchedulerOptions options_;
  Metrics& metrics_;
  PrefixCache cache_;
  std::shared_ptr<const TokenTable> table_;
  int32_t eos_ = -1;
  // Scheduler-thread scratch of the batched steps (no allocation in a steady decode loop).
  BatchWorkspace batch_ws_;
  std::vector<SessionAppend> step_items_;
  std::vector<Slot*> step_slots_;
  uint64_t admissions_ = 0;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool stopping_ = false;
  std::atomic<int64_t> active_{0};
  std::thread thread_;
};

}  // namespace dsv4::server
