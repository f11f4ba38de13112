// Task JSONL: round trip of generated tasks, a user-brought minimal task, and errors that
// name the file, line and field.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "base/error.h"
#include "base/file.h"
#include "train/tasks/task.h"

namespace dsv4::tasks {
namespace {

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "/tasks_io_" + std::to_string(::getpid()) + "_" + name;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

TEST(TasksIo, NamesRoundTrip) {
  for (Split s : {Split::Train, Split::Heldout}) EXPECT_EQ(parse_split(split_name(s)), s);
  for (int m = 0; m < kModes; ++m) EXPECT_EQ(parse_mode(mode_name(static_cast<Mode>(m))), static_cast<Mode>(m));
  EXPECT_EQ(parse_mode("chat"), Mode::NonThink);
  EXPECT_EQ(parse_mode("high"), Mode::ThinkHigh);
  EXPECT_EQ(parse_mode("max"), Mode::ThinkMax);
  EXPECT_THROW(parse_mode("low"), Error);
  EXPECT_THROW(parse_split("test"), Error);
}

TEST(TasksIo, JsonlRoundTrip) {
  std::vector<Task> tasks;
  for (const auto& suite : suite_names()) {
    if (suite.rfind("longctx.", 0) == 0 && suite != "longctx.4k") continue;
    for (auto& t : generate_suite(suite, Split::Heldout, 5, 1)) tasks.push_back(std::move(t));
  }
  const std::string path = temp_path("round.jsonl");
  write_tasks_jsonl(path, tasks);
  const auto back = read_tasks_jsonl(path);
  ASSERT_EQ(back.size(), tasks.size());
  for (size_t i = 0; i < tasks.size(); ++i) EXPECT_EQ(task_to_json(back[i]), task_to_json(tasks[i])) << tasks[i].id;
  // Same bytes when written again.
  const std::string path2 = temp_path("round2.jsonl");
  write_tasks_jsonl(path2, back);
  EXPECT_EQ(read_file(path), read_file(path2));
  std::remove(path.c_str());
  std::remove(path2.c_str());
}

TEST(TasksIo, MinimalUserTask) {
  const std::string path = temp_path("user.jsonl");
  write_text(path, "\n{\"messages\": [{\"role\": \"user\", \"content\": \"2+2?\"}], "
                   "\"grader\": {\"type\": \"numeric\", \"answer\": \"4\"}}\n\n");
  const auto tasks = read_tasks_jsonl(path);
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0].messages[0]["content"], "2+2?");
  EXPECT_TRUE(tasks[0].tools.empty());
  EXPECT_TRUE(tasks[0].targets[0].empty());
  EXPECT_TRUE(grade(tasks[0].grader, "It is 4.", {}).correct);
  std::remove(path.c_str());
}

// Each bad line -> an Error naming "file:line" and the field.
TEST(TasksIo, BadLinesNameTheLineAndField) {
  const std::string good = R"({"messages": [{"role": "user", "content": "x"}], "grader": {"type": "exact", "answer": "y"}})";
  const struct {
    std::string line;
    std::string field;
  } cases[] = {
      {"{not json", "invalid JSON"},
      {"[1, 2]", "JSON object"},
      {R"({"grader": {"type": "exact"}})", "'messages'"},
      {R"({"messages": [], "grader": {"type": "exact"}})", "'messages'"},
      {R"({"messages": [{"content": "x"}], "grader": {"type": "exact"}})", "'messages[0]'"},
      {R"({"messages": [{"role": "user"}]})", "'grader'"},
      {R"({"messages": [{"role": "user"}], "grader": {"answer": "1"}})", "'grader'"},
      {R"({"messages": [{"role": "user"}], "grader": {"type": "exact"}, "split": "test"})", "'split'"},
      {R"({"messages": [{"role": "user"}], "grader": {"type": "exact"}, "id": 3})", "'id'"},
      {R"({"messages": [{"role": "user"}], "grader": {"type": "exact"}, "tools": {}})", "'tools'"},
      {R"({"messages": [{"role": "user"}], "grader": {"type": "exact"}, "tool_env": [1]})", "'tool_env'"},
      {R"({"messages": [{"role": "user"}], "grader": {"type": "exact"}, "targets": {"low": []}})", "'targets.low'"},
      {R"({"messages": [{"role": "user"}], "grader": {"type": "exact"}, "targets": {"max": {}}})", "'targets.max'"},
      {R"({"messages": [{"role": "user"}], "grader": {"type": "exact"}, "targets": {"max": [{"content": "x"}]}})", "'targets.max[0]'"},
  };
  const std::string path = temp_path("bad.jsonl");
  for (const auto& c : cases) {
    write_text(path, good + "\n" + c.line + "\n");
    try {
      read_tasks_jsonl(path);
      FAIL() << "no error for " << c.line;
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(path + ":2"), std::string::npos) << what;
      EXPECT_NE(what.find(c.field), std::string::npos) << what;
    }
  }
  std::remove(path.c_str());
  EXPECT_THROW(read_tasks_jsonl(temp_path("missing.jsonl")), Error);
}

// Byte mutations of a generated task line: read back or an Error naming the line, never a crash
// (run under ASan / UBSan too).
TEST(TasksIo, MutatedLinesNeverCrash) {
  const auto tasks = generate_suite("tools.multi", Split::Train, 1, 0);
  const std::string line = task_to_json(tasks[0]).dump();
  const std::string path = temp_path("fuzz.jsonl");
  uint64_t st = 99;
  const std::string bytes = "{}[]\":,0a \\\x80";
  int errors = 0;
  for (int i = 0; i < 300; ++i) {
    std::string m = line;
    for (int k = 0; k < 3; ++k) {
      st = st * 6364136223846793005ull + 1442695040888963407ull;
      const size_t at = (st >> 33) % m.size();
      st = st * 6364136223846793005ull + 1442695040888963407ull;
      m[at] = bytes[(st >> 33) % bytes.size()];
    }
    write_text(path, m + "\n");
    try {
      const auto back = read_tasks_jsonl(path);
      EXPECT_EQ(back.size(), 1u);
    } catch (const Error& e) {
      ++errors;
      EXPECT_NE(std::string(e.what()).find(path + ":1"), std::string::npos) << e.what();
    }
  }
  EXPECT_GT(errors, 0);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace dsv4::tasks
