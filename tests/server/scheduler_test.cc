// Scheduler (continuous batching): jobs decoded together in batched steps give the tokens
// they give alone; a long prompt is prefilled in chunks while running jobs keep decoding; a
// forced tool call (tool_choice required / named) waits for "</think>" in thinking mode;
// speculating jobs give the plain tokens and never pass max_tokens.
#include <gtest/gtest.h>

#include <chrono>

#include "../engine/tiny_model.h"
#include "engine/speculative.h"
#include "frontends/server/scheduler.h"
#include "model/weights.h"

namespace dsv4::server {
namespace {

struct Env {
  std::shared_ptr<const ModelWeights> model;
  std::shared_ptr<const Tokenizer> tok;
};
const Env& env() {
  static Env e = [] {
    const std::string dir = test::tiny_chat_model_dir();
    Env x;
    x.model = load_model(dir);
    x.tok = std::make_shared<const Tokenizer>(Tokenizer::load(dir + "/tokenizer.json"));
    return x;
  }();
  return e;
}

SchedulerOptions options(int parallel, int64_t prefill_chunk) {
  SchedulerOptions o;
  o.parallel = parallel;
  o.session.context = 1024;
  o.session.prefill_chunk = prefill_chunk;
  return o;
}

JobSpec spec(const std::string& text, uint64_t seed, int64_t max_tokens) {
  JobSpec j;
  for (int32_t t : env().tok->encode(text)) j.prompt.push_back(t);
  j.sampling.seed = seed;
  j.max_tokens = max_tokens;
  j.mode = chat::ThinkingMode::Chat;
  return j;
}

// Submits all jobs at once and waits for them.
std::vector<std::shared_ptr<Job>> run_all(Scheduler& s, const std::vector<JobSpec>& specs) {
  std::vector<std::shared_ptr<Job>> jobs;
  for (const JobSpec& sp : specs) {
    jobs.push_back(std::make_shared<Job>(sp));
    s.submit(jobs.back());
  }
  for (auto& j : jobs) {
    std::vector<JobEvent> ev;
    while (!j->wait_events(ev, 100)) ev.clear();
    EXPECT_EQ(j->error, "");
  }
  return jobs;
}

std::vector<int32_t> alone(const JobSpec& sp) {
  Metrics m;
  Scheduler s(env().model, env().tok, options(1, 256), m);
  return run_all(s, {sp})[0]->result.tokens;
}

double finished_at(const Job& j) {  // seconds after submission
  return j.result.queue_seconds + j.result.prefill_seconds + j.result.decode_seconds;
}

TEST(Scheduler, BatchedJobsGiveTheirSequentialTokens) {
  std::vector<JobSpec> specs;
  const char* texts[] = {"Tell me a story.", "What is 2+2?", "Name a colour.", "Why is the sky blue?", "Hi"};
  for (int i = 0; i < 5; ++i) specs.push_back(spec(texts[i], 100 + static_cast<uint64_t>(i), 4 + i % 3));
  Metrics m;
  Scheduler s(env().model, env().tok, options(4, 8), m);
  auto jobs = run_all(s, specs);
  for (size_t i = 0; i < specs.size(); ++i) {
    EXPECT_EQ(jobs[i]->result.generated_tokens, specs[i].max_tokens) << i;
    EXPECT_EQ(jobs[i]->result.tokens, alone(specs[i])) << "job " << i;
  }
  // The decode steps really were batched: more than one sequence per step on average.
  EXPECT_GT(m.decode_step_sequences.load(), m.decode_steps.load());
}

TEST(Scheduler, LongPromptIsPrefilledInChunksWhileOthersDecode) {
  // B's prompt takes ~25 steps of 16 prompt tokens; A (short) decodes meanwhile.
  JobSpec a = spec("Name a colour.", 7, 6);
  std::string long_text;
  for (int i = 0; i < 60; ++i) long_text += "The quick brown fox jumps over the lazy dog. ";
  JobSpec b = spec(long_text, 8, 3);
  ASSERT_GT(b.prompt.size(), 400u);
  Metrics m;
  Scheduler s(env().model, env().tok, options(2, 16), m);
  auto jobs = run_all(s, {a, b});
  const Job &ja = *jobs[0], &jb = *jobs[1];
  EXPECT_EQ(ja.result.generated_tokens, 6);
  // A was done before B's prefill ended: B's prefill did not stall A.
  EXPECT_LT(finished_at(ja), jb.result.queue_seconds + jb.result.prefill_seconds)
      << "A finished " << finished_at(ja) << " s after submission, B's prefill ended after "
      << jb.result.queue_seconds + jb.result.prefill_seconds << " s";
  EXPECT_EQ(ja.result.tokens, alone(a));
  EXPECT_EQ(jb.result.tokens, alone(b));
}

TEST(Scheduler, CancelDuringChunkedPrefill) {
  std::string long_text;
  for (int i = 0; i < 60; ++i) long_text += "The quick brown fox jumps over the lazy dog. ";
  Metrics m;
  Scheduler s(env().model, env().tok, options(2, 8), m);
  auto job = std::make_shared<Job>(spec(long_text, 3, 4));
  s.submit(job);
  for (;;) {  // admitted: its prefill (~60 steps of 8 tokens) is under way
    std::lock_guard lk(job->mu);
    if (job->started) break;
  }
  job->cancelled = true;
  std::vector<JobEvent> ev;
  while (!job->wait_events(ev, 100)) {
  }
  EXPECT_EQ(job->error, "");
  EXPECT_EQ(job->result.finish, FinishReason::kCancelled);
  EXPECT_EQ(job->result.generated_tokens, 0);
  EXPECT_EQ(job->result.decode_seconds, 0.0);
  EXPECT_LT(job->result.prefill_seconds, 60.0);
  // The scheduler goes on serving.
  const JobSpec next = spec("Hi", 4, 2);
  EXPECT_EQ(run_all(s, {next})[0]->result.tokens, alone(next));
}

TEST(Scheduler, AnswerConstraintStartsAfterThinkEnd) {
  JobSpec sp;
  sp.mode = chat::ThinkingMode::Thinking;
  chat::StreamingParser p(chat::ThinkingMode::Thinking);
  EXPECT_FALSE(answer_started(sp, &p));
  p.feed("Let me think about which tool fits.");
  EXPECT_FALSE(answer_started(sp, &p));
  p.feed("</think>");
  EXPECT_TRUE(answer_started(sp, &p));
  JobSpec chat_spec;
  chat_spec.mode = chat::ThinkingMode::Chat;
  chat::StreamingParser pc(chat::ThinkingMode::Chat);
  EXPECT_TRUE(answer_started(chat_spec, &pc));
  EXPECT_TRUE(answer_started(sp, nullptr));  // raw completion: no reasoning part
}

TEST(Scheduler, ForcedToolPrefixOnlyAfterReasoning) {
  const std::string prefix = "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_time\">\n";
  std::vector<int32_t> forced = env().tok->encode(prefix);
  ASSERT_GE(forced.size(), 4u);
  const int32_t think_end = env().tok->encode("</think>").at(0);
  Metrics m;
  Scheduler s(env().model, env().tok, options(2, 256), m);
  // Chat mode: the answer starts at once, so the first tokens are the forced prefix.
  JobSpec chat_job = spec("What time is it?", 5, 4);
  chat_job.forced_tools = {ToolSchema{"get_time", json_py::Json()}};
  // Thinking mode: the model reasons first; nothing is forced before "</think>".
  JobSpec think_job = chat_job;
  think_job.mode = chat::ThinkingMode::Thinking;
  auto jobs = run_all(s, {chat_job, think_job});
  const JobResult& rc = jobs[0]->result;
  const JobResult& rt = jobs[1]->result;
  EXPECT_EQ(rc.tokens, std::vector<int32_t>(forced.begin(), forced.begin() + 4));
  ASSERT_EQ(rt.tokens.size(), 4u);
  size_t end = 0;
  while (end < rt.tokens.size() && rt.tokens[end] != think_end) ++end;
  // The reasoning tokens are the model's own (the random model writes "</think>" with
  // negligible probability; were it to, the tokens after it must be the forced prefix).
  EXPECT_GT(end, 0u) << "the first token was </think>";
  EXPECT_NE(std::vector<int32_t>(rt.tokens.begin(), rt.tokens.begin() + static_cast<long>(end)),
            std::vector<int32_t>(forced.begin(), forced.begin() + static_cast<long>(end)))
      << "the forced prefix was written while reasoning";
  EXPECT_EQ(rt.reasoning_tokens, static_cast<int64_t>(end));
  for (size_t i = end + 1; i < rt.tokens.size(); ++i) EXPECT_EQ(rt.tokens[i], forced[i - end - 1]);
}

// The whole forced call, not only its opening: a tool without parameters closes at once, then
// EOS, even on random weights (the model wrote free text after the opening before).
TEST(Scheduler, ForcedToolCallIsCompleteThenEos) {
  const std::string call = "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_time\">\n\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>";
  std::vector<int32_t> want = env().tok->encode(call);
  want.push_back(static_cast<int32_t>(env().model->config.eos_token_id));
  Metrics m;
  Scheduler s(env().model, env().tok, options(1, 256), m);
  JobSpec j = spec("What time is it?", 5, 64);
  j.forced_tools = {ToolSchema{"get_time", json_py::loads(R"({"type":"object","properties":{}})")}};
  auto jobs = run_all(s, {j});
  const JobResult& r = jobs[0]->result;
  EXPECT_EQ(r.tokens, want);
  EXPECT_EQ(r.finish, FinishReason::kEos);
  ASSERT_EQ(r.message.tool_calls.size(), 1u);
  EXPECT_EQ(r.message.tool_calls[0].name, "get_time");
  EXPECT_EQ(r.message.tool_calls[0].arguments, "{}");
}

}  // namespace
}  // namespace dsv4::server

namespace dsv4::server {
namespace {
// Speculative decoding in the scheduler: a greedy job alone in its steps speculates (drafted
// tokens in /metrics and its result) and gets exactly the tokens it gets without speculation:
// plain text, a stop string, a JSON-constrained answer, a forced tool call. A sampled
// job does not speculate under the automatic policy (greedy jobs only).
SchedulerOptions spec_options(int draft) {
  SchedulerOptions o = options(1, 256);
  o.spec_draft = draft;
  o.session.mtp = draft > 0;
  return o;
}
}  // namespace

TEST(Scheduler, SpeculativeGreedyJobsGiveThePlainTokens) {
  std::vector<JobSpec> specs;
  JobSpec a = spec("Tell me a story.", 1, 24);
  a.sampling.temperature = 0.0f;
  a.want_logprobs = true;
  specs.push_back(a);
  JobSpec b = a;
  b.json = true;
  b.max_tokens = 16;
  specs.push_back(b);
  JobSpec c = a;
  c.forced_tools = {ToolSchema{"get_weather", json_py::loads(R"({"type":"object","properties":{"city":{"type":"string","maxLength":8},
                                                                  "days":{"type":"integer"}},"required":["city"]})")}};
  c.max_tokens = 40;
  specs.push_back(c);
  Metrics m0, m1;
  Scheduler plain(env().model, env().tok, spec_options(0), m0);
  auto want = run_all(plain, specs);
  // A stop string from the middle of the first plain answer.
  ASSERT_GT(want[0]->result.text.size(), 16u);
  JobSpec d = a;
  d.stop = {want[0]->result.text.substr(10, 3)};
  auto want_d = run_all(plain, {d});
  specs.push_back(d);
  want.push_back(want_d[0]);
  for (int draft : {1, 3}) {
    Metrics m;
    Scheduler s(env().model, env().tok, spec_options(draft), m);
    for (size_t i = 0; i < specs.size(); ++i) {
      auto got = run_all(s, {specs[i]});  // one at a time: every step has one sequence
      const JobResult& g = got[0]->result;
      const JobResult& w = want[i]->result;
      EXPECT_EQ(g.tokens, w.tokens) << "job " << i << " draft " << draft;
      EXPECT_EQ(g.text, w.text);
      EXPECT_EQ(g.finish, w.finish);
      ASSERT_EQ(g.samples.size(), w.samples.size());
      for (size_t k = 0; k < w.samples.size(); ++k) EXPECT_EQ(g.samples[k].logprob, w.samples[k].logprob);
      EXPECT_GT(g.drafted_tokens, 0) << "job " << i;
    }
    EXPECT_GT(m.spec_drafted.load(), 0u);
    EXPECT_NE(m.prometheus(0, 0, 1, 0, 0).find("dsv4_spec_drafted_tokens_total"), std::string::npos);
    // Sampled job: no drafting under the automatic policy.
    const uint64_t before = m.spec_drafted.load();
    auto sampled = run_all(s, {spec("Name a colour.", 9, 8)});
    EXPECT_EQ(sampled[0]->result.drafted_tokens, 0);
    EXPECT_EQ(m.spec_drafted.load(), before);
  }
}

// max_tokens with speculation: a job gets exactly max_tokens tokens (greedy: the plain ones),
// usage counts what it got, finish "length"; for every draft length and max_tokens 1..9, sampled
// jobs too (spec_sampled) up to max_tokens draft + 2. A job's first token comes from its prefill logits, and a job whose
// last token came from a batched step may speculate next (alone once the other job ended):
// neither may add a token past the budget.
TEST(Scheduler, SpeculativeJobsStopAtMaxTokens) {
  constexpr int64_t kMax = 9;
  JobSpec a = spec("Tell me a story.", 1, kMax);
  a.sampling.temperature = 0.0f;
  JobSpec b = spec("Name a colour.", 2, kMax);
  b.sampling.temperature = 0.0f;
  Metrics m0;
  Scheduler plain(env().model, env().tok, spec_options(0), m0);
  auto want = run_all(plain, {a, b});
  const std::vector<int32_t>& want_a = want[0]->result.tokens;
  const std::vector<int32_t>& want_b = want[1]->result.tokens;
  ASSERT_EQ(want_a.size(), static_cast<size_t>(kMax));
  ASSERT_EQ(want_b.size(), static_cast<size_t>(kMax));
  auto check = [](const JobResult& g, int64_t n, const std::vector<int32_t>* greedy, const std::string& what) {
    EXPECT_EQ(g.generated_tokens, static_cast<int64_t>(g.tokens.size())) << what;
    if (greedy) {
      EXPECT_EQ(g.tokens, std::vector<int32_t>(greedy->begin(), greedy->begin() + n)) << what;
      EXPECT_EQ(g.finish, FinishReason::kLength) << what;
    } else {
      EXPECT_LE(g.generated_tokens, n) << what;
      if (g.finish == FinishReason::kLength) {
        EXPECT_EQ(g.generated_tokens, n) << what;
      }
    }
  };
  for (int draft = 1; draft <= kMaxDraft; ++draft) {
    Metrics m;
    SchedulerOptions o = spec_options(draft);
    o.spec_sampled = true;
    Scheduler s(env().model, env().tok, o, m);
    for (int64_t n = 1; n <= kMax; ++n) {
      const std::string what = "draft " + std::to_string(draft) + " max_tokens " + std::to_string(n);
      JobSpec g = a;
      g.max_tokens = n;
      check(run_all(s, {g})[0]->result, n, &want_a, "greedy " + what);
      if (n > draft + 2) continue;  // sampled jobs: the budgets a single step can reach
      JobSpec r = spec("Name a colour.", 10 + static_cast<uint64_t>(n), n);
      r.sampling.temperature = 0.8f;
      check(run_all(s, {r})[0]->result, n, nullptr, "sampled " + what);
    }
    EXPECT_GT(m.spec_drafted.load(), 0u);
  }
  // Two jobs decoded together, then the longer one alone: whatever step b ends in, a gets its
  // max_tokens plain tokens.
  SchedulerOptions o2 = spec_options(3);
  o2.parallel = 2;
  Metrics m2;
  Scheduler s2(env().model, env().tok, o2, m2);
  for (int64_t nb = 1; nb < kMax; ++nb) {
    JobSpec jb = b;
    jb.max_tokens = nb;
    auto got = run_all(s2, {a, jb});
    check(got[0]->result, kMax, &want_a, "a beside b of " + std::to_string(nb));
    check(got[1]->result, nb, &want_b, "b of " + std::to_string(nb));
  }
}

}  // namespace dsv4::server
