// Scheduler: runs generation jobs on up to `parallel` slots with continuous batching.
//
// One scheduler thread owns the model work. Each iteration:
//   1. admits queued jobs into free slots (prefix-cache lookup + prompt prefill);
//   2. samples the next token of every active slot from its logits (constraints, stop
//      strings, the streaming output parser, events to the waiting HTTP handler);
//   3. retires finished or cancelled slots (their sessions go back to the prefix cache);
//   4. decode_step(): one engine step over all remaining slots.
// Jobs join and leave between steps, so a long generation never blocks a short one.
//
// What is batched, honestly: the scheduling is. decode_step() is the single place where the
// forward pass over all active sequences happens, but the model's forward still takes one
// sequence per call, so today it calls Session::step for each slot in turn; a multi-sequence
// forward would replace that loop without touching the rest. Prefill runs in the scheduler
// thread at admission, one prompt at a time (a long prompt delays the other slots' next token).
#pragma once
#include <atomic>
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
  // tool_choice required / named: once the answer part starts, the output must begin with one
  // of these texts (the DSML tool-call prefix and a function name).
  std::vector<std::string> forced_prefixes;
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
  double queue_seconds = 0, prefill_seconds = 0, decode_seconds = 0;
};

class Job {
 public:
  explicit Job(JobSpec s) : spec(std::move(s)) {}
  JobSpec spec;
  std::string id;
  std::atomic<bool> cancelled{false};

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
  void finish_slot(Slot& slot);
  void decode_step(std::vector<Slot*>& slots);

  std::shared_ptr<const ModelWeights> model_;
  std::shared_ptr<const Tokenizer> tok_;
  SchedulerOptions options_;
  Metrics& metrics_;
  PrefixCache cache_;
  std::shared_ptr<const TokenTable> table_;
  int32_t eos_ = -1;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool stopping_ = false;
  std::atomic<int64_t> active_{0};
  std::thread thread_;
};

}  // namespace dsv4::server
