// `dsv4 tasks list` / `dsv4 tasks write --suite S[,S2] --split train|heldout --n N --seed K
// --out FILE.jsonl`: the built-in task suites (src/train/tasks, docs/tasks-format.md).
// `dsv4 tasks tool` / `dsv4 tasks grade`: one task's simulated tool and grader, for a tool
// loop run by an outside client (scripts/eval-tools-openai.mjs).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "base/error.h"
#include "frontends/cli/commands.h"
#include "base/file.h"
#include "base/strings.h"
#include "train/tasks/render.h"
#include "train/tasks/task.h"
#include <nlohmann/json.hpp>

namespace dsv4::cli {

std::string read_stdin();  // cmd_tokenize.cc

namespace {

const tasks::Task& find_task(const std::vector<tasks::Task>& all, const std::string& file, const std::string& id) {
  for (const auto& t : all)
    if (t.id == id) return t;
  throw Error(file + ": no task with id '" + id + "' (" + std::to_string(all.size()) + " tasks in the file)");
}

// The names of the function tools a task offers.
std::vector<std::string> offered_tools(const tasks::Task& t) {
  std::vector<std::string> names;
  for (const auto& tool : t.tools)
    if (tool.is_object() && tool.contains("function") && tool["function"].is_object() &&
        tool["function"].contains("name") && tool["function"]["name"].is_string())
      names.push_back(tool["function"]["name"].get<std::string>());
  return names;
}

// Prints what the task's simulated tool answers (tasks::run_tool, byte for byte). A tool the
// task does not offer or arguments that are not JSON are errors of the caller (exit 1).
int run_tool_command(const std::string& file, const std::string& id, const std::string& name, const std::string& arguments) {
  const auto all = tasks::read_tasks_jsonl(file);
  const tasks::Task& t = find_task(all, file, id);
  const auto names = offered_tools(t);
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    throw Error("--name: task '" + id + "' in " + file + " offers no tool '" + name + "' (its tools: " +
                (list.empty() ? "none" : list) + ")");
  }
  tasks::Json args;
  try {
    args = tasks::Json::parse(arguments);
  } catch (const std::exception& e) {
    throw Error("--arguments: not valid JSON (" + std::string(e.what()) + "): " + arguments);
  }
  const std::string result = tasks::run_tool(t.tool_env, name, args);
  std::fwrite(result.data(), 1, result.size(), stdout);
  return 0;
}

// Grades a conversation as an OpenAI client accumulated it (prompt, assistant turns with
// tool_calls whose function.arguments is a JSON string, tool results, final answer) with the
// task's grader (tasks::grade_messages). A conversation that does not end in an assistant
// answer without tool calls has no final answer and fails. Prints one JSON object.
int grade_command(const std::string& file, const std::string& id) {
  const auto all = tasks::read_tasks_jsonl(file);
  const tasks::Task& t = find_task(all, file, id);
  tasks::Json messages;
  const std::string text = read_stdin();
  try {
    messages = tasks::Json::parse(text);
  } catch (const std::exception& e) {
    throw Error(std::string("stdin: not valid JSON (") + e.what() + ")");
  }
  if (!messages.is_array()) throw Error("stdin: expected a JSON array of chat messages");
  for (size_t i = 0; i < messages.size(); ++i)
    if (!messages[i].is_object() || !messages[i].contains("role") || !messages[i]["role"].is_string())
      throw Error("stdin: messages[" + std::to_string(i) + "] needs a string 'role'");
  tasks::Json out = tasks::Json::object();
  out["id"] = id;
  const auto calls = tasks::tool_calls_in(messages);  // throws naming a malformed call
  const tasks::Json* last = messages.empty() ? nullptr : &messages.back();
  const bool final_answer = last && (*last)["role"] == "assistant" &&
                            (!last->contains("tool_calls") || (*last)["tool_calls"].is_null() || (*last)["tool_calls"].empty());
  if (!final_answer) {
    out["passed"] = false;
    out["detail"] = last ? "no final answer: the conversation ends with a '" + (*last)["role"].get<std::string>() +
                               "' message" + ((*last)["role"] == "assistant" ? " that calls tools" : "")
                         : "no final answer: no messages";
  } else {
    const tasks::GradeResult g = tasks::grade_messages(t.grader, messages);
    out["passed"] = g.correct;
    out["detail"] = g.detail;
  }
  out["tool_calls"] = calls.size();
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace

int cmd_tasks(int argc, char** argv) {
  CLI::App app{"generated task suites with verifiable answers (JSONL, docs/tasks-format.md)", "dsv4 tasks"};
  app.require_subcommand(1);
  auto* list = app.add_subcommand("list", "the built-in suites");
  auto* write = app.add_subcommand("write", "write N tasks of one or more suites to a JSONL file");
  std::string suites, split = "train", out;
  int64_t n = 100;
  uint64_t seed = 0;
  write->add_option("--suite", suites, "suite name(s), comma-separated (see `dsv4 tasks list`)")->required();
  write->add_option("--split", split, "train | heldout");
  write->add_option("--n", n, "tasks per suite")->check(CLI::NonNegativeNumber);
  write->add_option("--seed", seed, "seed of the draws");
  write->add_option("--out", out, "output JSONL file (written atomically)")->required();
  std::string text_modes;
  write->add_option("--text", text_modes,
                    "write {\"text\": conversation} lines instead of tasks: each task's prompt + target rendered in "
                    "the V4 chat format, once per listed mode (e.g. non-think,think-high,think-max); for tokenizer "
                    "training and pre-training text");
  auto* tool = app.add_subcommand("tool", "print what one task's simulated tool answers to a call");
  auto* grade = app.add_subcommand("grade", "grade a conversation (JSON array of chat messages on stdin) with one task's grader");
  std::string tasks_file, id, tool_name, arguments = "{}";
  for (auto* sub : {tool, grade}) {
    sub->add_option("--tasks", tasks_file, "the JSONL task file")->required();
    sub->add_option("--id", id, "the task's id")->required();
  }
  tool->add_option("--name", tool_name, "the tool's name (one of the task's tools)")->required();
  tool->add_option("--arguments", arguments, "the call's arguments, a JSON object text (default {})");
  CLI11_PARSE(app, argc, argv);
  if (tool->parsed()) return run_tool_command(tasks_file, id, tool_name, arguments);
  if (grade->parsed()) return grade_command(tasks_file, id);
  if (list->parsed()) {
    for (const auto& s : tasks::suite_names()) std::printf("%-16s %s\n", s.c_str(), tasks::suite_description(s).c_str());
    return 0;
  }
  const tasks::Split sp = tasks::parse_split(split);
  const std::vector<std::string> names = split_list(suites);
  for (const auto& name : names)
    if (name.empty()) throw Error("--suite: empty name in '" + suites + "'");
  std::vector<tasks::Task> all;
  for (const auto& name : names) {
    auto part = tasks::generate_suite(name, sp, n, seed);
    for (auto& t : part) all.push_back(std::move(t));
  }
  if (!text_modes.empty()) {
    std::vector<tasks::Mode> modes;
    for (const std::string& m : split_list(text_modes)) modes.push_back(tasks::parse_mode(m));
    std::string body;
    size_t lines = 0;
    for (const auto& t : all)
      for (tasks::Mode m : modes) {
        body += nlohmann::json{{"text", tasks::render_conversation(t, m)}}.dump() + "\n";
        ++lines;
      }
    write_file_atomic(out, body);
    std::fprintf(stderr, "wrote %zu conversations of %zu tasks to %s\n", lines, all.size(), out.c_str());
    return 0;
  }
  tasks::write_tasks_jsonl(out, all);
  std::fprintf(stderr, "wrote %zu tasks to %s\n", all.size(), out.c_str());
  return 0;
}

}  // namespace dsv4::cli
