// Built-in suites: every target of every suite, split and mode passes its own grader (tool
// targets replayed through run_tool), renders through the V4 chat encoder in its mode, ids
// are unique, generation is deterministic, and train / held-out problems are disjoint.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>
#include <string>

#include "text/chat_encoder.h"
#include "train/tasks/task.h"

namespace dsv4::tasks {
namespace {

// Tasks per suite and split in the per-task checks (long contexts are big).
int64_t n_for(const std::string& suite) {
  if (suite == "longctx.64k") return 3;
  if (suite == "longctx.16k") return 8;
  if (suite == "longctx.4k") return 30;
  return 300;
}

const Split kSplits[] = {Split::Train, Split::Heldout};

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Every line of `sub` occurs in `text`, in the same order (other lines may come between).
bool lines_in_order(const std::string& sub, const std::string& text) {
  const std::vector<std::string> want = split_lines(sub), have = split_lines(text);
  size_t next = 0;
  for (const std::string& line : have)
    if (next < want.size() && line == want[next]) ++next;
  return next == want.size();
}

// Replays one mode's target: tool calls through run_tool (each result must equal the target's
// tool message), then grades the final content. Returns "" or what is wrong.
std::string replay_and_grade(const Task& t, Mode mode) {
  const Json& target = t.targets[static_cast<int>(mode)];
  if (!target.is_array() || target.empty()) return "empty target";
  std::vector<ToolCallMade> calls;
  std::vector<std::string> pending;  // results the next tool messages must carry
  size_t next_result = 0;
  std::string final_content;
  for (size_t i = 0; i < target.size(); ++i) {
    const Json& m = target[i];
    const std::string role = m.at("role").get<std::string>();
    const bool last = i + 1 == target.size();
    if (role == "assistant") {
      if (next_result != pending.size()) return "assistant message before all tool results at " + std::to_string(i);
      const bool has_reasoning = m.contains("reasoning_content") && m["reasoning_content"].is_string() &&
                                 !m["reasoning_content"].get<std::string>().empty();
      if (mode == Mode::NonThink && m.contains("reasoning_content")) return "non-think target has reasoning";
      if (mode != Mode::NonThink && !has_reasoning) return "thinking target without reasoning at " + std::to_string(i);
      pending.clear();
      next_result = 0;
      if (m.contains("tool_calls")) {
        if (last) return "last message has tool calls";
        for (const Json& c : m["tool_calls"]) {
          if (c.at("type") != "function" || !c.at("id").is_string()) return "bad tool call shape";
          const std::string name = c.at("function").at("name").get<std::string>();
          const Json args = Json::parse(c.at("function").at("arguments").get<std::string>());
          calls.push_back({name, args});
          pending.push_back(run_tool(t.tool_env, name, args));
        }
      } else if (!last) {
        return "assistant message without tool calls before the end";
      }
      if (last) final_content = m.at("content").get<std::string>();
    } else if (role == "tool") {
      if (next_result >= pending.size()) return "tool message without a call";
      if (m.at("content").get<std::string>() != pending[next_result])
        return "tool result differs from run_tool: '" + m.at("content").get<std::string>() + "' vs '" +
               pending[next_result] + "'";
      ++next_result;
    } else {
      return "unexpected role " + role;
    }
  }
  if (final_content.empty()) return "no final content";
  const GradeResult g = grade(t.grader, final_content, calls);
  if (!g.correct) return "grader rejects the target: " + g.detail;
  // The reply-level helper eval and RL use agrees.
  const GradeResult gm = grade_messages(t.grader, target);
  if (!gm.correct) return "grade_messages rejects the target: " + gm.detail;
  return "";
}

TEST(TasksSuites, EveryTargetPassesItsGrader) {
  for (const auto& suite : suite_names()) {
    for (Split split : kSplits) {
      const auto tasks = generate_suite(suite, split, n_for(suite), 7);
      ASSERT_EQ(static_cast<int64_t>(tasks.size()), n_for(suite)) << suite;
      for (const Task& t : tasks) {
        EXPECT_EQ(t.suite, suite);
        EXPECT_EQ(t.split, split);
        EXPECT_FALSE(t.domain.empty());
        for (int m = 0; m < kModes; ++m) {
          const std::string why = replay_and_grade(t, static_cast<Mode>(m));
          ASSERT_EQ(why, "") << t.id << " " << mode_name(static_cast<Mode>(m)) << "\n" << task_to_json(t).dump(1);
        }
        // think-max = think-high's work plus checks (at the end, or after each step): the
        // final reasoning is longer and holds every line of think-high's, in order.
        const std::string high = t.targets[1].back().value("reasoning_content", "");
        const std::string max = t.targets[2].back().value("reasoning_content", "");
        EXPECT_GT(max.size(), high.size()) << t.id;
        EXPECT_TRUE(lines_in_order(high, max)) << t.id << "\n" << high << "\n---\n" << max;
        EXPECT_NE(max.find("Check"), std::string::npos) << t.id;
      }
    }
  }
}

TEST(TasksSuites, TargetsRenderThroughTheChatEncoder) {
  for (const auto& suite : suite_names()) {
    for (Split split : kSplits) {
      const auto tasks = generate_suite(suite, split, std::min<int64_t>(n_for(suite), 40), 11);
      for (const Task& t : tasks) {
        for (int m = 0; m < kModes; ++m) {
          Json conv = t.messages;
          for (const Json& x : t.targets[m]) conv.push_back(x);
          conv = chat::attach_request_tools(conv, t.tools);
          chat::EncodeOptions o;
          o.thinking_mode = m == 0 ? chat::ThinkingMode::Chat : chat::ThinkingMode::Thinking;
          if (m == 1) o.reasoning_effort = "high";
          if (m == 2) o.reasoning_effort = "max";
          // Multi-turn tool conversations keep their reasoning (V4 keeps it across tool calls).
          o.drop_thinking = false;
          std::string text;
          ASSERT_NO_THROW(text = chat::encode_messages(conv, o)) << t.id << " " << m;
          const std::string final_content = t.targets[m].back()["content"].get<std::string>();
          EXPECT_NE(text.find(final_content), std::string::npos) << t.id;
          for (const Json& x : t.targets[m]) {
            if (x.contains("reasoning_content")) {
              EXPECT_NE(text.find(x["reasoning_content"].get<std::string>()), std::string::npos) << t.id;
            }
          }
          if (m == 0) {
            EXPECT_EQ(text.find(std::string(chat::kThinkStart) + "\n"), std::string::npos) << t.id;
          }
          // With the encoder's default drop_thinking too, a tool conversation keeps the
          // reasoning of every assistant turn (all of them follow the last user message).
          if (m != 0 && t.targets[m].size() > 1) {
            o.drop_thinking = true;
            const std::string dropped = chat::encode_messages(conv, o);
            for (const Json& x : t.targets[m])
              if (x.contains("reasoning_content")) {
                EXPECT_NE(dropped.find(x["reasoning_content"].get<std::string>()), std::string::npos) << t.id;
              }
          }
        }
      }
    }
  }
}

TEST(TasksSuites, IdsUniqueAndGenerationDeterministic) {
  for (const auto& suite : suite_names()) {
    const int64_t n = std::min<int64_t>(n_for(suite), 50);
    for (Split split : kSplits) {
      const auto a = generate_suite(suite, split, n, 3);
      const auto b = generate_suite(suite, split, n, 3);
      const auto c = generate_suite(suite, split, n, 4);
      std::set<std::string> ids;
      std::string ja, jb, jc;
      for (const auto& t : a) {
        EXPECT_TRUE(ids.insert(t.id).second) << t.id;
        ja += task_to_json(t).dump() + "\n";
      }
      for (const auto& t : b) jb += task_to_json(t).dump() + "\n";
      for (const auto& t : c) jc += task_to_json(t).dump() + "\n";
      EXPECT_EQ(ja, jb) << suite;
      EXPECT_NE(ja, jc) << suite;  // another seed draws other problems
      // A prefix of a longer draw: n does not change the first tasks.
      const auto longer = generate_suite(suite, split, n + 5, 3);
      EXPECT_EQ(task_to_json(longer[static_cast<size_t>(n) - 1]).dump(), task_to_json(a.back()).dump());
    }
  }
}

TEST(TasksSuites, TrainAndHeldoutAreDisjoint) {
  for (const auto& suite : suite_names()) {
    int64_t n = 2000;
    if (suite == "longctx.4k") n = 200;
    if (suite == "longctx.16k") n = 40;
    if (suite == "longctx.64k") n = 8;
    if (suite == "chat.identity") n = 60;
    std::set<std::string> train_canon, train_prompts;
    for (const auto& t : generate_suite(suite, Split::Train, n, 5)) {
      EXPECT_EQ(split_of(suite, t.canonical), Split::Train);
      train_canon.insert(t.canonical);
      train_prompts.insert(t.messages.dump() + t.tool_env.dump());
    }
    int64_t distinct = 0;
    std::set<std::string> held;
    for (const auto& t : generate_suite(suite, Split::Heldout, n, 5)) {
      EXPECT_EQ(split_of(suite, t.canonical), Split::Heldout);
      EXPECT_EQ(train_canon.count(t.canonical), 0u) << suite << " " << t.canonical;
      // The problem a model sees: the prompt and, for tool tasks, what the tools answer.
      EXPECT_EQ(train_prompts.count(t.messages.dump() + t.tool_env.dump()), 0u) << suite << " " << t.id;
      distinct += held.insert(t.canonical).second;
    }
    // Held-out problems are distinct while the space allows it.
    if (suite != "chat.identity") {
      EXPECT_EQ(distinct, n) << suite;
    }
  }
}

TEST(TasksSuites, SplitRuleHoldsOutAboutOneInFive) {
  int64_t held = 0;
  for (int i = 0; i < 10000; ++i) held += split_of("math.arith", std::to_string(i) + "+7") == Split::Heldout;
  EXPECT_GT(held, 1800);
  EXPECT_LT(held, 2200);
}

TEST(TasksSuites, UnknownSuiteIsAnError) {
  try {
    generate_suite("math.nope", Split::Train, 1, 0);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("math.nope"), std::string::npos);
  }
}

}  // namespace
}  // namespace dsv4::tasks

namespace dsv4::tasks {
namespace {

// longctx.N: about N tokens at 4 characters per token, the asked fact exactly once, at
// varying depths.
TEST(TasksSuites, LongContextLengthAndFact) {
  for (const auto& [suite, tokens] : std::vector<std::pair<std::string, int64_t>>{{"longctx.4k", 4096}, {"longctx.16k", 16384}, {"longctx.64k", 65536}}) {
    std::set<size_t> depths;
    const int64_t n = tokens > 16384 ? 6 : 20;
    for (const Task& t : generate_suite(suite, Split::Train, n, 9)) {
      const std::string prompt = t.messages[0]["content"].get<std::string>();
      EXPECT_GE(prompt.size(), static_cast<size_t>(tokens) * 4) << t.id;
      EXPECT_LT(prompt.size(), static_cast<size_t>(tokens) * 4 + 200) << t.id;
      const std::string code = t.grader["answer"].get<std::string>();
      const size_t at = prompt.find(" is " + code + ".");
      ASSERT_NE(at, std::string::npos) << t.id;
      EXPECT_EQ(prompt.find(" is " + code + ".", at + 1), std::string::npos) << t.id;
      depths.insert(at * 10 / prompt.size());
      // The question names the thing whose code is asked.
      const size_t q = prompt.rfind("Question: What is the code of the ");
      ASSERT_NE(q, std::string::npos);
      const std::string thing = prompt.substr(q + 34, prompt.size() - q - 35);
      EXPECT_NE(prompt.find("The code of the " + thing + " is " + code + "."), std::string::npos) << t.id;
    }
    EXPECT_GE(depths.size(), n > 6 ? 4u : 2u) << suite;
  }
}

// The README's default prompt is one of the identity problems.
TEST(TasksSuites, IdentityCoversTheDefaultPrompt) {
  bool found = false;
  for (Split split : kSplits)
    for (const Task& t : generate_suite("chat.identity", split, 300, 1))
      if (t.messages[0]["content"] == "Hello! Who are you?") {
        found = true;
        for (int m = 0; m < kModes; ++m) {
          const std::string c = t.targets[m].back()["content"].get<std::string>();
          EXPECT_NE(c.find("dsv4 default model"), std::string::npos);
          EXPECT_NE(c.find("DeepSeek-V4"), std::string::npos);
        }
      }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace dsv4::tasks

namespace dsv4::tasks {
namespace {

// The checks above can fail: a wrong tool result, a wrong final answer, a missing or wrong
// call, reasoning in non-think, each is caught.
TEST(TasksSuites, CorruptedTargetsAreCaught) {
  const auto tools = generate_suite("tools.multi", Split::Train, 3, 2);
  for (const Task& base : tools) {
    {
      Task t = base;
      t.targets[1][1]["content"] = "999999";
      EXPECT_NE(replay_and_grade(t, Mode::ThinkHigh).find("tool result differs"), std::string::npos);
    }
    {
      Task t = base;
      t.targets[2].back()["content"] = "The answer is 1.";
      EXPECT_NE(replay_and_grade(t, Mode::ThinkMax).find("grader rejects"), std::string::npos);
      EXPECT_FALSE(grade_messages(t.grader, t.targets[2]).correct);
    }
    {
      Task t = base;
      t.targets[0].erase(t.targets[0].begin(), t.targets[0].begin() + 2);  // drop the first call
      EXPECT_NE(replay_and_grade(t, Mode::NonThink), "");
      EXPECT_FALSE(grade_messages(t.grader, t.targets[0]).correct);
    }
    {
      Task t = base;
      t.targets[0][0]["reasoning_content"] = "x";
      EXPECT_NE(replay_and_grade(t, Mode::NonThink), "");
    }
    {
      Task t = base;
      Json& args = t.targets[1][0]["tool_calls"][0]["function"]["arguments"];
      args = "{not json";
      EXPECT_FALSE(grade_messages(t.grader, t.targets[1]).correct);
    }
  }
  for (const auto& suite : suite_names()) {
    if (suite.rfind("longctx.", 0) == 0 && suite != "longctx.4k") continue;
    for (Task t : generate_suite(suite, Split::Heldout, 5, 2)) {
      if (suite == "tools.multi") continue;
      t.targets[1].back()["content"] = "I do not know.";
      EXPECT_NE(replay_and_grade(t, Mode::ThinkHigh), "") << t.id;
      t.targets[1].back().erase("reasoning_content");
      EXPECT_NE(replay_and_grade(t, Mode::ThinkHigh).find("without reasoning"), std::string::npos) << t.id;
    }
  }
}

}  // namespace
}  // namespace dsv4::tasks
