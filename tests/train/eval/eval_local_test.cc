// The local engine backend on the tiny random model: runs every mode and fills the report
// (accuracy is meaningless on random weights, so only shapes are checked), and renders the
// prompts of each mode and of a tool conversation as the V4 chat format wants.
#include <gtest/gtest.h>

#include "engine/tiny_model.h"
#include "engine/model_files.h"
#include "model/weights.h"
#include "train/eval/local.h"
#include "train/eval/report.h"

namespace dsv4::eval {
namespace {

using tasks::Mode;

std::vector<tasks::Task> read_fixture(const std::string& name) {
  return tasks::read_tasks_jsonl(std::string(DSV4_TEST_DATA_DIR) + "/eval/" + name);
}

struct Tiny {
  std::shared_ptr<const ModelWeights> weights;
  std::unique_ptr<Tokenizer> tok;
};

Tiny load_tiny() {
  const std::string dir = test::tiny_chat_model_dir();
  Tiny t;
  t.weights = load_model(dir);
  t.tok = std::make_unique<Tokenizer>(load_model_tokenizer(dir));
  return t;
}

TEST(EvalLocal, RunsAllModesAndFillsTheReport) {
  Tiny m = load_tiny();
  LocalOptions lo;
  lo.session.context = 512;
  lo.params.sampling.temperature = 0.0f;
  lo.params.max_tokens = 4;
  LocalBackend backend(m.weights, *m.tok, lo);
  const auto tasks = read_fixture("tasks.jsonl");
  EvalOptions eo;  // all three modes
  const auto records = run_eval(backend, tasks, eo, default_task_ops());
  ASSERT_EQ(records.size(), 9u);
  for (size_t i = 0; i < records.size(); ++i) {
    const TaskRecord& r = records[i];
    EXPECT_EQ(r.id, tasks[i / 3].id);
    EXPECT_EQ(r.mode, eo.modes[i % 3]);
    EXPECT_TRUE(r.error.empty()) << r.error;
    EXPECT_GE(r.rounds, 1);
    EXPECT_GT(r.completion_tokens, 0);
    EXPECT_LE(r.completion_tokens, 4 * r.rounds);
    EXPECT_LE(r.reasoning_tokens, r.completion_tokens);
    if (r.mode == Mode::NonThink) {
      EXPECT_EQ(r.reasoning_tokens, 0);
    }
  }
  ReportInfo info;
  info.modes = eo.modes;
  const Json rep = report_json(info, records, true);
  ASSERT_EQ(rep["results"].size(), 6u);  // tools, math x 3 modes
  EXPECT_EQ(rep["results"][0]["n"], 1);
  EXPECT_EQ(rep["results"][3]["n"], 2);
  EXPECT_EQ(rep["totals"].size(), 3u);
  EXPECT_EQ(rep["tasks"].size(), 9u);
}

// Batched generation (--concurrency > 1) gives every conversation the tokens it gets alone.
TEST(EvalLocal, BatchedEqualsSequential) {
  Tiny m = load_tiny();
  const auto tasks = read_fixture("tasks.jsonl");
  std::vector<std::vector<TaskRecord>> runs;
  for (float temperature : {0.0f, 1.0f})
    for (int batch : {1, 4}) {
      LocalOptions lo;
      lo.session.context = 512;
      lo.params.sampling.temperature = temperature;
      lo.params.max_tokens = 6;
      lo.batch = batch;
      LocalBackend backend(m.weights, *m.tok, lo);
      EvalOptions eo;
      eo.modes = {Mode::NonThink, Mode::ThinkMax};
      eo.seed = 5;
      runs.push_back(run_eval(backend, tasks, eo, default_task_ops()));
    }
  for (int pair : {0, 2}) {
    const auto& a = runs[pair];
    const auto& b = runs[pair + 1];
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_TRUE(a[i].error.empty() && b[i].error.empty()) << a[i].error << b[i].error;
      EXPECT_EQ(a[i].answer, b[i].answer) << i;
      EXPECT_EQ(a[i].reasoning, b[i].reasoning) << i;
      EXPECT_EQ(a[i].completion_tokens, b[i].completion_tokens) << i;
      EXPECT_EQ(a[i].reasoning_tokens, b[i].reasoning_tokens) << i;
      EXPECT_EQ(a[i].rounds, b[i].rounds) << i;
    }
  }
  // Sampling at temperature 1 differs from greedy somewhere (the seeds reach the sampler).
  bool differs = false;
  for (size_t i = 0; i < runs[0].size(); ++i) differs = differs || runs[0][i].reasoning + runs[0][i].answer != runs[2][i].reasoning + runs[2][i].answer;
  EXPECT_TRUE(differs);
}

TEST(EvalLocal, RendersModesAndKeepsReasoningAcrossToolCalls) {
  Tiny m = load_tiny();
  LocalOptions lo;
  lo.session.context = 512;
  LocalBackend backend(m.weights, *m.tok, lo);
  TurnRequest q;
  q.messages = Json::array({Json{{"role", "user"}, {"content", "capital?"}}});
  q.mode = Mode::NonThink;
  const std::string chat = backend.render(q);
  EXPECT_NE(chat.find("<｜Assistant｜></think>"), std::string::npos) << chat;
  q.mode = Mode::ThinkHigh;
  const std::string high = backend.render(q);
  EXPECT_EQ(high.substr(high.size() - 7), "<think>") << high;
  q.mode = Mode::ThinkMax;
  const std::string max = backend.render(q);
  EXPECT_GT(max.size(), high.size());  // the max-effort prefix
  EXPECT_EQ(max.substr(max.size() - 7), "<think>");

  // A tool round: the assistant's reasoning and call, then the result, then the next turn.
  q.mode = Mode::ThinkHigh;
  q.tools = read_fixture("tasks.jsonl")[0].tools;
  q.messages.push_back(Json{{"role", "assistant"},
                            {"content", ""},
                            {"reasoning_content", "REASONING-BEFORE-THE-CALL"},
                            {"tool_calls", Json::array({Json{{"id", "call_1"}, {"type", "function"},
                                                             {"function", {{"name", "lookup"}, {"arguments", R"({"key": "france"})"}}}}})}});
  q.messages.push_back(Json{{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "TOOL-RESULT-PARIS"}});
  const std::string p = backend.render(q);
  const size_t r = p.find("REASONING-BEFORE-THE-CALL"), c = p.find("lookup", p.find("REASONING")), t = p.find("TOOL-RESULT-PARIS");
  ASSERT_NE(r, std::string::npos) << p;
  ASSERT_NE(c, std::string::npos) << p;
  ASSERT_NE(t, std::string::npos) << p;
  EXPECT_LT(r, c);
  EXPECT_LT(c, t);
  EXPECT_NE(p.find("## Tools"), std::string::npos);
}

}  // namespace
}  // namespace dsv4::eval
