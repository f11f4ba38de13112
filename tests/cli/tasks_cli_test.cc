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
