// With the task library: a backend that answers each turn with the task's own target message
// for the mode (the reference conversation of docs/tasks-format.md) must score 100% on every
// built-in suite in every mode, through the runner's tool loop with the real tools and
// graders; and the tool results the runner feeds back must be the targets' tool results.
#include <gtest/gtest.h>

#include "train/eval/report.h"
#include "train/eval/modes.h"
#include "train/eval/runner.h"

namespace dsv4::eval {
namespace {

class OracleBackend : public ChatBackend {
 public:
  explicit OracleBackend(const std::vector<tasks::Task>& ts) : tasks_(ts) {}
  int max_parallel() const override { return 4; }
  std::vector<TurnReply> complete(const std::vector<TurnRequest>& requests) override {
    std::vector<TurnReply> out;
    for (const TurnRequest& q : requests) out.push_back(answer(q));
    return out;
  }
  std::vector<std::string> mismatches;

 private:
  TurnReply answer(const TurnRequest& q) {
    TurnReply r;
    const tasks::Task* task = nullptr;
    for (const tasks::Task& t : tasks_) {
      const size_t n = t.messages.size();
      if (q.messages.size() < n) continue;
      bool same = true;
      for (size_t i = 0; same && i < n; ++i) same = q.messages[i] == t.messages[i];
      if (same) task = &t;
    }
    if (!task) {
      r.error = "oracle: unknown prompt";
      return r;
    }
    const Json& target = task->targets[static_cast<int>(q.mode)];
    // The conversation so far (after the prompt) must follow the target: same roles, same
    // tool results.
    const size_t start = task->messages.size();
    const size_t done = q.messages.size() - start;
    if (done >= target.size()) {
      r.error = "oracle: the conversation is longer than the target";
      return r;
    }
    for (size_t i = 0; i < done; ++i) {
      const Json& got = q.messages[start + i];
      const Json& want = target[i];
      if (got["role"] != want["role"]) mismatches.push_back(task->id + ": role at " + std::to_string(i));
      if (want["role"] == "tool" && got["content"] != want["content"])
        mismatches.push_back(task->id + ": tool result " + got["content"].dump() + " vs target " + want["content"].dump());
    }
    const Json& m = target[done];
    if (m["role"] != "assistant") {
      r.error = "oracle: the target's next message is not the assistant's";
      return r;
    }
    if (m.contains("content") && m["content"].is_string()) r.content = m["content"];
    if (m.contains("reasoning_content") && m["reasoning_content"].is_string()) r.reasoning = m["reasoning_content"];
    if (m.contains("tool_calls") && m["tool_calls"].is_array()) r.tool_calls = m["tool_calls"];
    r.completion_tokens = 1;
    return r;
  }

  const std::vector<tasks::Task>& tasks_;
};

TEST(EvalOracle, TargetsScoreFullMarksOnEverySuiteAndMode) {
  std::vector<tasks::Task> all;
  for (const std::string& s : tasks::suite_names()) {
    if (s == "longctx.64k") continue;  // same code as 4k / 16k, only longer
    for (tasks::Task& t : tasks::generate_suite(s, tasks::Split::Heldout, 3, 11)) all.push_back(std::move(t));
  }
  OracleBackend oracle(all);
  const std::vector<TaskRecord> records = run_eval(oracle, all, EvalOptions{}, default_task_ops());
  ASSERT_EQ(records.size(), all.size() * 3);
  int tool_tasks = 0;
  for (const TaskRecord& r : records) {
    EXPECT_TRUE(r.correct) << r.id << " " << mode_key(r.mode) << ": " << r.detail << " / answer: " << r.answer;
    tool_tasks += r.calls.empty() ? 0 : 1;
  }
  EXPECT_GT(tool_tasks, 0);  // the tool loop ran
  for (const std::string& m : oracle.mismatches) ADD_FAILURE() << m;
  ReportInfo info;
  info.modes = EvalOptions{}.modes;
  for (const Json& s : report_json(info, records, false)["results"]) EXPECT_EQ(s["accuracy"], 1.0) << s.dump();
}

}  // namespace
}  // namespace dsv4::eval
