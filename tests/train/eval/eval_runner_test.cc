// The runner on a scripted backend: the tool loop's bound, call ids made up when a server
// gives none, malformed tool calls, a stop request, and record order with parallelism.
#include <gtest/gtest.h>

#include "train/eval/runner.h"

namespace dsv4::eval {
namespace {

using tasks::Mode;

tasks::Task task(const std::string& id, const std::string& prompt) {
  tasks::Task t;
  t.id = id;
  t.suite = "s";
  t.messages = Json::array({Json{{"role", "user"}, {"content", prompt}}});
  t.tool_env = Json{{"lookup", {{"k", "v"}}}};
  t.grader = Json{{"type", "exact"}, {"answer", "ok"}};
  return t;
}

// "loop": always calls lookup (no id); "badcall": a tool call without a name; otherwise
// answers "ok". Counts calls and batch sizes.
class Scripted : public ChatBackend {
 public:
  explicit Scripted(int parallel) : parallel_(parallel) {}
  int max_parallel() const override { return parallel_; }
  std::vector<TurnReply> complete(const std::vector<TurnRequest>& reqs) override {
    ++calls;
    max_batch = std::max(max_batch, reqs.size());
    std::vector<TurnReply> out;
    for (const TurnRequest& q : reqs) {
      last_messages = q.messages;
      TurnReply r;
      const std::string p = q.messages[0]["content"];
      if (p == "loop")
        r.tool_calls = Json::array({Json{{"type", "function"}, {"function", {{"name", "lookup"}, {"arguments", R"({"key": "k"})"}}}}});
      else if (p == "badcall")
        r.tool_calls = Json::array({Json{{"type", "function"}, {"function", {{"arguments", "{}"}}}}});
      else
        r.content = "ok";
      r.completion_tokens = 2;
      out.push_back(std::move(r));
    }
    return out;
  }
  int calls = 0;
  size_t max_batch = 0;
  Json last_messages;

 private:
  int parallel_;
};

TaskOps ops() {
  TaskOps o;
  o.run_tool = [](const Json& env, const std::string& name, const Json& args) {
    return name == "lookup" ? env["lookup"][args["key"].get<std::string>()].get<std::string>() : std::string("error");
  };
  o.grade = [](const Json& g, const std::string& content, const std::vector<tasks::ToolCallMade>&) {
    return tasks::GradeResult{content == g["answer"].get<std::string>(), content == "ok" ? "" : "wrong"};
  };
  return o;
}

TEST(EvalRunner, ToolLoopIsBoundedAndCallIdsAreMadeUp) {
  Scripted b(1);
  EvalOptions eo;
  eo.modes = {Mode::ThinkHigh};
  eo.max_rounds = 3;
  const auto rs = run_eval(b, {task("a", "loop")}, eo, ops());
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_FALSE(rs[0].correct);
  EXPECT_NE(rs[0].error.find("no final answer after 3 turns"), std::string::npos) << rs[0].error;
  EXPECT_EQ(rs[0].rounds, 3);
  EXPECT_EQ(rs[0].completion_tokens, 6);
  EXPECT_EQ(rs[0].calls.size(), 2u);  // the third turn's calls are not run
  // The last request: prompt, then (assistant, tool) x 2, ids made up and matching.
  ASSERT_EQ(b.last_messages.size(), 5u);
  const std::string id = b.last_messages[1]["tool_calls"][0]["id"];
  EXPECT_FALSE(id.empty());
  EXPECT_EQ(b.last_messages[2]["tool_call_id"], id);
  EXPECT_EQ(b.last_messages[2]["content"], "v");
  EXPECT_NE(b.last_messages[3]["tool_calls"][0]["id"], id);
}

TEST(EvalRunner, MalformedToolCallIsAnErrorNotACrash) {
  Scripted b(1);
  EvalOptions eo;
  eo.modes = {Mode::NonThink};
  const auto rs = run_eval(b, {task("a", "badcall")}, eo, ops());
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_NE(rs[0].error.find("no function name"), std::string::npos) << rs[0].error;
}

TEST(EvalRunner, OrderAndParallelism) {
  Scripted b(4);
  std::vector<tasks::Task> ts;
  for (int i = 0; i < 5; ++i) ts.push_back(task("t" + std::to_string(i), i == 2 ? "loop" : "q"));
  EvalOptions eo;  // 3 modes: 15 conversations
  eo.max_rounds = 2;
  const auto rs = run_eval(b, ts, eo, ops());
  ASSERT_EQ(rs.size(), 15u);
  for (size_t i = 0; i < rs.size(); ++i) {
    EXPECT_EQ(rs[i].id, ts[i / 3].id);
    EXPECT_EQ(rs[i].mode, eo.modes[i % 3]);
    EXPECT_EQ(rs[i].correct, i / 3 != 2);
  }
  EXPECT_EQ(b.max_batch, 4u);
}

TEST(EvalRunner, StopKeepsOnlyFinishedConversations) {
  Scripted b(2);
  std::vector<tasks::Task> ts;
  for (int i = 0; i < 4; ++i) ts.push_back(task("t" + std::to_string(i), "q"));
  EvalOptions eo;
  eo.modes = {Mode::NonThink};
  eo.should_stop = [&] { return b.calls >= 1; };  // after the first batch of 2 is answered
  const auto rs = run_eval(b, ts, eo, ops());
  EXPECT_EQ(b.calls, 1);
  EXPECT_TRUE(rs.empty());  // the stop came before the replies were used
  int polls = 0;
  eo.should_stop = [&] { return ++polls > 3; };  // before call 1, after it, before call 2: go; then stop
  Scripted b2(2);
  const auto rs2 = run_eval(b2, ts, eo, ops());
  EXPECT_EQ(b2.calls, 2);
  ASSERT_EQ(rs2.size(), 2u);
  EXPECT_EQ(rs2[0].id, "t0");
  EXPECT_EQ(rs2[1].id, "t1");
}

}  // namespace
}  // namespace dsv4::eval
