// `dsv4 tasks list` / `dsv4 tasks write --suite S[,S2] --split train|heldout --n N --seed K
// --out FILE.jsonl`: the built-in task suites (src/train/tasks, docs/tasks-format.md).
#include <CLI/CLI.hpp>
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
  CLI11_PARSE(app, argc, argv);
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
