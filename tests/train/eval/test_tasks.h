// Test stand-ins for the task library (dsv4_tasks is linked only by dsv4 itself): reads the
// hand-written fixtures of tests/data/eval and grades / runs tools just enough for them
// (exact answers, tool trajectories, a lookup table).
#pragma once
#include <fstream>
#include <string>
#include <vector>

#include "train/eval/runner.h"

namespace dsv4::test {

inline std::vector<tasks::Task> read_fixture_tasks(const std::string& name) {
  const std::string path = std::string(DSV4_TEST_DATA_DIR) + "/eval/" + name;
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::vector<tasks::Task> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const tasks::Json j = tasks::Json::parse(line);
    tasks::Task t;
    t.id = j.at("id");
    t.suite = j.at("suite");
    t.messages = j.at("messages");
    if (j.contains("tools")) t.tools = j["tools"];
    if (j.contains("tool_env")) t.tool_env = j["tool_env"];
    t.grader = j.at("grader");
    out.push_back(std::move(t));
  }
  return out;
}

inline std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\n");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \t\n") - a + 1);
}

inline eval::TaskOps fixture_ops() {
  eval::TaskOps ops;
  ops.run_tool = [](const tasks::Json& env, const std::string& name, const tasks::Json& args) -> std::string {
    if (name != "lookup" || !args.is_object() || !args.contains("key")) return "error: bad call";
    const tasks::Json& table = env.at("lookup");
    const std::string key = args["key"];
    return table.contains(key) ? table[key].get<std::string>() : "error: no such key";
  };
  ops.grade = [](const tasks::Json& g, const std::string& content, const std::vector<tasks::ToolCallMade>& calls) {
    tasks::GradeResult r;
    const std::string type = g.at("type");
    const std::string answer = g.at("answer");
    if (type == "exact") {
      r.correct = trim(content) == answer;
    } else if (type == "tool_trajectory") {
      const tasks::Json& want = g.at("calls");
      bool same = want.size() == calls.size();
      for (size_t i = 0; same && i < calls.size(); ++i)
        same = want[i].at("name") == calls[i].name && want[i].at("arguments") == calls[i].arguments;
      r.correct = same && content.find(answer) != std::string::npos;
    }
    if (!r.correct) r.detail = "expected " + answer;
    return r;
  };
  return ops;
}

}  // namespace dsv4::test
