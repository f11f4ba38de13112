// `dsv4 tasks list / write` end to end through the executable: the file holds what the library
// generates, bad options exit non-zero naming the value and leave no file.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include "base/file.h"
#include "train/tasks/task.h"

#include <nlohmann/json.hpp>
#include <vector>

namespace fs = std::filesystem;

namespace {

struct CmdResult {
  int code;
  std::string out;  // stdout + stderr
};

CmdResult run(const std::string& args) {
  std::string cmd = std::string(DSV4_BIN) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

fs::path temp(const std::string& tag) {
  fs::path d = fs::temp_directory_path() / ("dsv4_tasks_cli_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

TEST(TasksCli, ListNamesEverySuite) {
  const auto r = run("tasks list");
  ASSERT_EQ(r.code, 0) << r.out;
  for (const auto& s : dsv4::tasks::suite_names()) EXPECT_NE(r.out.find(s), std::string::npos) << s;
}

TEST(TasksCli, WriteMatchesTheLibrary) {
  const fs::path d = temp("write");
  const std::string out = (d / "t.jsonl").string();
  const auto r = run("tasks write --suite math.multistep,tools.multi --split heldout --n 7 --seed 5 --out " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  std::string want;
  for (const char* s : {"math.multistep", "tools.multi"})
    for (const auto& t : dsv4::tasks::generate_suite(s, dsv4::tasks::Split::Heldout, 7, 5))
      want += dsv4::tasks::task_to_json(t).dump() + "\n";
  EXPECT_EQ(dsv4::read_file(out), want);
  EXPECT_EQ(dsv4::tasks::read_tasks_jsonl(out).size(), 14u);
  // Only the output file: the temp file of the atomic write is gone.
  EXPECT_EQ(std::distance(fs::directory_iterator(d), fs::directory_iterator()), 1);
  fs::remove_all(d);
}

TEST(TasksCli, BadOptionsFailWithAMessage) {
  const fs::path d = temp("bad");
  const std::string out = (d / "t.jsonl").string();
  auto r = run("tasks write --suite math.nope --out " + out);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("math.nope"), std::string::npos) << r.out;
  r = run("tasks write --suite math.arith --split test --out " + out);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("test"), std::string::npos) << r.out;
  r = run("tasks write --suite math.arith, --out " + out);
  EXPECT_NE(r.code, 0);
  r = run("tasks write --suite math.arith");
  EXPECT_NE(r.code, 0);
  EXPECT_FALSE(fs::exists(out));
  fs::remove_all(d);
}

}  // namespace

// --text: one {"text": ...} line per task and mode, the conversation in the V4 chat format
// (BOS, the user turn, the mode's reasoning and the answer, EOS); a bad mode is an error.
TEST(TasksCli, TextRendersEveryTaskInEveryMode) {
  const fs::path d = temp("text");
  const std::string out = (d / "t.jsonl").string();
  const auto r = run("tasks write --suite math.arith --n 3 --seed 2 --text non-think,think-high --out " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  const auto tasks = dsv4::tasks::generate_suite("math.arith", dsv4::tasks::Split::Train, 3, 2);
  const std::string body = dsv4::read_file(out);
  std::vector<std::string> lines;
  for (size_t p = 0, e; (e = body.find('\n', p)) != std::string::npos; p = e + 1) lines.push_back(body.substr(p, e - p));
  ASSERT_EQ(lines.size(), 6u);
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto j = nlohmann::json::parse(lines[i]);
    const std::string text = j.at("text").get<std::string>();
    const auto& t = tasks[i / 2];
    const bool think = i % 2 == 1;
    EXPECT_EQ(text.rfind("<｜begin▁of▁sentence｜>", 0), 0u) << text;
    EXPECT_NE(text.find(t.messages[0]["content"].get<std::string>()), std::string::npos) << text;
    const auto& target = t.targets[think ? 1 : 0][0];
    EXPECT_NE(text.find(target["content"].get<std::string>() + "<｜end▁of▁sentence｜>"), std::string::npos) << text;
    EXPECT_EQ(text.find("<think>") != std::string::npos, think) << text;
    if (think) EXPECT_NE(text.find(target["reasoning_content"].get<std::string>() + "</think>"), std::string::npos);
  }
  EXPECT_NE(run("tasks write --suite math.arith --n 1 --text non-think,fast --out " + out).code, 0);
  fs::remove_all(d);
}

// --- dsv4 tasks tool / grade: one task's simulated tool and grader for an outside tool loop ---
namespace {

std::string quote(const std::string& s) {  // single-quoted for the shell
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// The target conversation of `mode` as an OpenAI client holds it: the prompt, then the
// target turns with function.arguments as JSON text.
nlohmann::ordered_json client_conversation(const dsv4::tasks::Task& t, dsv4::tasks::Mode mode) {
  nlohmann::ordered_json m = t.messages;
  for (auto msg : t.targets[static_cast<int>(mode)]) {
    if (msg.contains("tool_calls"))
      for (auto& c : msg["tool_calls"])
        if (!c["function"]["arguments"].is_string()) c["function"]["arguments"] = c["function"]["arguments"].dump();
    m.push_back(msg);
  }
  return m;
}

CmdResult grade(const std::string& file, const std::string& id, const std::string& stdin_text, const fs::path& dir) {
  const fs::path in = dir / "stdin.json";
  dsv4::write_file_atomic(in.string(), stdin_text);
  return run("tasks grade --tasks " + file + " --id " + quote(id) + " < " + in.string());
}

}  // namespace

TEST(TasksCli, ToolAnswersWhatTheLibraryAnswers) {
  const fs::path d = temp("tool");
  const std::string file = (d / "t.jsonl").string();
  ASSERT_EQ(run("tasks write --suite tools.multi --split heldout --n 4 --seed 3 --out " + file).code, 0);
  const auto tasks = dsv4::tasks::read_tasks_jsonl(file);
  ASSERT_EQ(tasks.size(), 4u);
  int checked = 0;
  for (const auto& t : tasks) {
    for (const auto& call : t.grader["calls"]) {
      const std::string name = call["name"].get<std::string>();
      const auto r = run("tasks tool --tasks " + file + " --id " + quote(t.id) + " --name " + name + " --arguments " +
                         quote(call["arguments"].dump()));
      ASSERT_EQ(r.code, 0) << r.out;
      const std::string want = dsv4::tasks::run_tool(t.tool_env, name, call["arguments"]);
      EXPECT_FALSE(want.rfind("error", 0) == 0) << want;
      EXPECT_EQ(r.out, want) << t.id << " " << name;
      ++checked;
    }
  }
  EXPECT_GE(checked, 8);
  // A call the tool rejects is answered, like a real tool, with the library's error text.
  const auto& t = tasks[0];
  auto r = run("tasks tool --tasks " + file + " --id " + quote(t.id) + " --name calculator --arguments '{\"expression\": \"7 / 0\"}'");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, dsv4::tasks::run_tool(t.tool_env, "calculator", {{"expression", "7 / 0"}}));
  EXPECT_EQ(r.out.rfind("error: ", 0), 0u) << r.out;
  // No --arguments: {} (list_files takes none).
  r = run("tasks tool --tasks " + file + " --id " + quote(t.id) + " --name list_files");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, dsv4::tasks::run_tool(t.tool_env, "list_files", nlohmann::ordered_json::object()));
  fs::remove_all(d);
}

TEST(TasksCli, ToolErrorsNameTheFileIdAndField) {
  const fs::path d = temp("toolbad");
  const std::string file = (d / "t.jsonl").string();
  ASSERT_EQ(run("tasks write --suite tools.multi --split heldout --n 1 --out " + file).code, 0);
  const std::string id = dsv4::tasks::read_tasks_jsonl(file)[0].id;
  auto r = run("tasks tool --tasks " + file + " --id tools.multi/heldout/999999 --name list_files");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find(file), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no task with id 'tools.multi/heldout/999999'"), std::string::npos) << r.out;
  r = run("tasks tool --tasks " + file + " --id " + quote(id) + " --name web_search --arguments '{}'");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("--name"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no tool 'web_search'"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("calculator"), std::string::npos) << r.out;  // lists the task's tools
  r = run("tasks tool --tasks " + file + " --id " + quote(id) + " --name calculator --arguments '{\"expression\": '");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("--arguments: not valid JSON"), std::string::npos) << r.out;
  r = run("tasks tool --tasks " + (d / "missing.jsonl").string() + " --id " + quote(id) + " --name list_files");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("missing.jsonl"), std::string::npos) << r.out;
  EXPECT_NE(run("tasks tool --tasks " + file + " --id " + quote(id)).code, 0);  // --name is required
  fs::remove_all(d);
}

TEST(TasksCli, GradeJudgesAClientConversation) {
  const fs::path d = temp("grade");
  const std::string file = (d / "t.jsonl").string();
  ASSERT_EQ(run("tasks write --suite tools.multi --split heldout --n 3 --seed 1 --out " + file).code, 0);
  const auto tasks = dsv4::tasks::read_tasks_jsonl(file);
  for (const auto& t : tasks)
    for (auto mode : {dsv4::tasks::Mode::NonThink, dsv4::tasks::Mode::ThinkMax}) {
      const auto conv = client_conversation(t, mode);
      const auto r = grade(file, t.id, conv.dump(), d);
      ASSERT_EQ(r.code, 0) << r.out;
      const auto j = nlohmann::json::parse(r.out);
      EXPECT_EQ(j.at("id"), t.id);
      EXPECT_EQ(j.at("passed"), true) << r.out;
      EXPECT_EQ(j.at("tool_calls").get<size_t>(), t.grader["calls"].size()) << r.out;
    }
  const auto& t = tasks[0];
  auto conv = client_conversation(t, dsv4::tasks::Mode::ThinkHigh);
  // A wrong final answer fails.
  auto wrong = conv;
  wrong.back()["content"] = "The answer is 1.";
  auto j = nlohmann::json::parse(grade(file, t.id, wrong.dump(), d).out);
  EXPECT_EQ(j.at("passed"), false) << j;
  EXPECT_FALSE(j.at("detail").get<std::string>().empty()) << j;
  // A conversation that stops at a tool result (or at a tool call) has no final answer, even
  // though an earlier assistant turn exists.
  auto cut = conv;
  cut.erase(cut.end() - 1);
  j = nlohmann::json::parse(grade(file, t.id, cut.dump(), d).out);
  EXPECT_EQ(j.at("passed"), false) << j;
  EXPECT_NE(j.at("detail").get<std::string>().find("no final answer"), std::string::npos) << j;
  cut.erase(cut.end() - 1);
  j = nlohmann::json::parse(grade(file, t.id, cut.dump(), d).out);
  EXPECT_EQ(j.at("passed"), false) << j;
  EXPECT_NE(j.at("detail").get<std::string>().find("calls tools"), std::string::npos) << j;
  // The right answer without the tool calls fails the trajectory.
  nlohmann::ordered_json bare = t.messages;
  bare.push_back(conv.back());
  j = nlohmann::json::parse(grade(file, t.id, bare.dump(), d).out);
  EXPECT_EQ(j.at("passed"), false) << j;
  EXPECT_EQ(j.at("tool_calls"), 0);
  // Bad input: errors naming stdin / the message, and the task.
  auto r = grade(file, t.id, "[{\"role\": ", d);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("stdin: not valid JSON"), std::string::npos) << r.out;
  r = grade(file, t.id, "{\"messages\": []}", d);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("JSON array"), std::string::npos) << r.out;
  r = grade(file, t.id, "[{\"content\": \"hi\"}]", d);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("messages[0]"), std::string::npos) << r.out;
  r = grade(file, t.id, "[{\"role\": \"assistant\", \"tool_calls\": [{\"function\": {}}]}]", d);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("messages[0].tool_calls[0]"), std::string::npos) << r.out;
  r = grade(file, "nope", conv.dump(), d);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("no task with id 'nope'"), std::string::npos) << r.out;
  fs::remove_all(d);
}
