// `dsv4 eval`: runs task suites (the built-in generated ones, or JSONL files a user brings)
// against the local engine (-m MODEL, default: the built-in model) or any OpenAI-compatible
// --endpoint, in each reasoning mode, executing tool calls for tool tasks; prints a table,
// writes a JSON report (accuracy with 95% Wilson intervals, tokens, latency) and an SVG chart.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>

#include "base/error.h"
#include "frontends/cli/commands.h"
#include "frontends/cli/generation_cli.h"
#include "frontends/cli/signals.h"
#include "train/eval/chart.h"
#include "train/eval/endpoint.h"
#include "train/eval/local.h"
#include "train/eval/modes.h"
#include "base/strings.h"
#include "train/eval/report.h"
#include "train/eval/runner.h"
#include "train/tasks/task.h"

namespace dsv4::cli {
namespace {

// Comma-separated names; empty items (a trailing comma) are ignored.
std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  for (std::string& x : split_list(s))
    if (!x.empty()) out.push_back(std::move(x));
  return out;
}

// "eval [=========           ] 12/60  acc 58.3%" on stderr when it is a terminal.
class EvalProgress {
 public:
  explicit EvalProgress(bool enabled) : on_(enabled && ::isatty(STDERR_FILENO) != 0) {}
  void update(int64_t done, int64_t total, int64_t correct) {
    if (!on_ || total <= 0) return;
    const int width = 30;
    const int filled = static_cast<int>(width * done / total);
    std::fprintf(stderr, "\r\033[Keval [%.*s%*s] %lld/%lld  acc %.1f%%", filled, "==============================", width - filled, "",
                 (long long)done, (long long)total, done > 0 ? 100.0 * static_cast<double>(correct) / static_cast<double>(done) : 0.0);
    std::fflush(stderr);
    shown_ = true;
  }
  void clear() {
    if (shown_) std::fprintf(stderr, "\r\033[K");
    shown_ = false;
  }

 private:
  bool on_;
  bool shown_ = false;
};

void print_table(FILE* out, const std::vector<eval::Summary>& rows) {
  std::fprintf(out, "%-24s %-11s %6s %8s %17s %10s %10s %9s %6s\n", "suite", "mode", "n", "accuracy", "95% CI", "tokens", "reasoning",
               "latency", "errors");
  for (const eval::Summary& s : rows)
    std::fprintf(out, "%-24s %-11s %6lld %7.1f%% [%5.1f%%, %5.1f%%] %10.1f %10.1f %8.2fs %6lld\n", s.suite.c_str(), eval::mode_key(s.mode),
                 (long long)s.n, 100 * s.accuracy, 100 * s.ci.lo, 100 * s.ci.hi, s.mean_completion_tokens, s.mean_reasoning_tokens,
                 s.mean_latency_s, (long long)s.errors);
}

}  // namespace

int cmd_eval(int argc, char** argv) {
  CLI::App app{"Evaluate a model (local or an OpenAI-compatible endpoint) on task suites, per reasoning mode", "dsv4 eval"};
  GenerationCliOptions g;
  g.temperature = 0.0f;  // greedy by default: a reproducible report
  g.seed = 0;
  std::string endpoint, api_key, suites, split = "heldout", modes = "non-think,think-high,think-max", out, chart;
  std::vector<std::string> task_files;
  int64_t n = 50, max_tokens = 4096;
  int concurrency = 1, max_rounds = 8;
  bool details = false, quiet = false;
  app.add_option("-m,--model", g.model,
                 "local: model directory or GGUF file (default: the built-in default model); with --endpoint: the model name sent");
  app.add_option("--endpoint", endpoint, "OpenAI-compatible server URL (http(s)://host:port[/v1]) instead of a local model");
  app.add_option("--api-key", api_key, "bearer key for --endpoint (default: $OPENAI_API_KEY)");
  app.add_option("--suite", suites, "built-in suites, comma-separated (see the task library)");
  app.add_option("--n", n, "tasks per suite")->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  app.add_option("--split", split, "split of the built-in suites: heldout or train")->check(CLI::IsMember({"heldout", "train"}));
  app.add_option("--tasks", task_files, "task file(s) in JSONL (docs/tasks-format.md); repeatable");
  app.add_option("--modes", modes, "reasoning modes, comma-separated: non-think, think-high, think-max");
  app.add_option("--concurrency", concurrency, "conversations in flight: parallel requests (endpoint) or one batched generation (local)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--max-tokens", max_tokens, "tokens per model turn at most (0: no limit)")->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  app.add_option("--max-rounds", max_rounds, "model turns per task at most (tool calls + the final answer)")->check(CLI::Range(1, 1000));
  app.add_option("--temperature,--temp", g.temperature, "sampling temperature (0: greedy)")->check(CLI::Range(0.0f, 2.0f));
  app.add_option("-s,--seed", g.seed, "seed of the generated suites and of the sampling")->check(CLI::Range(int64_t{0}, int64_t{1} << 62));
  app.add_option("--out", out, "JSON report path");
  app.add_option("--chart", chart, "bar chart of accuracy per suite and mode (.svg; PNG is not supported)");
  app.add_flag("--details", details, "per-task records in the report (answer, tool calls, tokens, latency)");
  app.add_flag("-q,--quiet", quiet, "no progress bar");
  app.add_option("-t,--threads", g.threads, "threads (0: physical cores)")->check(CLI::Range(0, 1024));
  app.add_option("-c,--ctx-size", g.context, "context size in tokens (0: the model's maximum)")->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  app.add_option("--numerics", g.numerics, "reference (official numerics), precise (FP32 activations) or int8 (precise, GGUF Q8_0 / MXFP4 products on int8 activations)")
      ->check(CLI::IsMember({"reference", "precise", "int8"}));
  add_spec_options(app, g.spec, g.draft);
  CLI11_PARSE(app, argc, argv);

  if (suites.empty() && task_files.empty()) throw Error("nothing to evaluate: give --suite NAME[,NAME...] or --tasks FILE.jsonl");
  if (!chart.empty() && !(chart.size() > 4 && chart.compare(chart.size() - 4, 4, ".svg") == 0))
    throw Error("--chart " + chart + ": only SVG charts are supported (give a .svg path)");
  const std::vector<tasks::Mode> mode_list = eval::parse_mode_list(modes);

  // Tasks: built-in suites first, then files, in the order given.
  std::vector<tasks::Task> task_list;
  const tasks::Split sp = tasks::parse_split(split);
  for (const std::string& s : split_commas(suites)) {
    std::vector<tasks::Task> ts = tasks::generate_suite(s, sp, n, static_cast<uint64_t>(g.seed));
    for (tasks::Task& t : ts) task_list.push_back(std::move(t));
  }
  for (const std::string& f : task_files) {
    std::vector<tasks::Task> ts = tasks::read_tasks_jsonl(f);
    if (ts.empty()) throw Error(f + ": no tasks");
    for (tasks::Task& t : ts) task_list.push_back(std::move(t));
  }

  eval::ReportInfo info;
  info.modes = mode_list;
  info.seed = static_cast<uint64_t>(g.seed);
  info.date = eval::utc_now_iso8601();
  info.options = eval::Json{{"suites", split_commas(suites)}, {"n", n},       {"split", split},
                            {"tasks_files", task_files},       {"max_tokens", max_tokens},
                            {"max_rounds", max_rounds},        {"temperature", g.temperature},
                            {"concurrency", concurrency}};

  // Ctrl-C while tasks run: stop at the next turn and report the finished tasks.
  std::optional<InterruptGuard> interrupt;
  auto interrupted_now = [&] { return interrupt && interrupt->requested(); };
  std::unique_ptr<eval::ChatBackend> backend;
  LoadedModel m;
  if (!endpoint.empty()) {
    if (app.count("--numerics") || app.count("--threads") || app.count("--ctx-size"))
      throw Error("--numerics, --threads and --ctx-size apply to a local model, not to --endpoint");
    eval::EndpointOptions eo;
    eo.url = endpoint;
    eo.api_key = api_key;
    if (eo.api_key.empty())
      if (const char* k = std::getenv("OPENAI_API_KEY")) eo.api_key = k;
    eo.model = g.model;
    eo.concurrency = concurrency;
    eo.max_tokens = max_tokens;
    eo.temperature = g.temperature;
    auto b = std::make_unique<eval::EndpointBackend>(eo);
    b->check_reachable();
    backend = std::move(b);
    info.backend = "endpoint";
    info.target = endpoint;
    info.model_name = g.model;
  } else {
    if (!api_key.empty()) throw Error("--api-key needs --endpoint");
    m = load_model_and_tokenizer(g);
    eval::LocalOptions lo;
    lo.session = session_options(g);
    ThinkSetting think;  // the mode is set per turn by the backend
    lo.params = generate_params(g, think);
    lo.params.max_tokens = max_tokens > 0 ? max_tokens : -1;
    apply_spec(g, *m.weights, lo.session, lo.params);
    lo.batch = concurrency;
    lo.should_stop = interrupted_now;
    backend = std::make_unique<eval::LocalBackend>(m.weights, *m.tokenizer, lo);
    info.backend = "local";
    info.target = m.dir;
  }

  EvalProgress bar(!quiet);
  int64_t correct = 0;
  eval::EvalOptions run_opts;
  run_opts.modes = mode_list;
  run_opts.max_rounds = max_rounds;
  run_opts.seed = static_cast<uint64_t>(g.seed);
  run_opts.should_stop = interrupted_now;
  interrupt.emplace();
  const std::vector<eval::TaskRecord> records =
      eval::run_eval(*backend, task_list, run_opts, eval::default_task_ops(),
                     [&](const eval::TaskRecord& r, int64_t done, int64_t total) {
                       correct += r.correct ? 1 : 0;
                       bar.update(done, total, correct);
                     });
  bar.clear();
  const bool interrupted = interrupted_now();
  if (interrupted) {
    std::fprintf(stderr, "interrupted: the report covers the %zu of %zu task runs that finished\n", records.size(),
                 task_list.size() * mode_list.size());
    info.options["interrupted"] = true;
  }

  const std::vector<eval::Summary> rows = eval::summarize(records, mode_list);
  std::vector<eval::Summary> all = rows;
  for (const eval::Summary& s : eval::totals(records, mode_list)) all.push_back(s);
  print_table(stdout, all);
  if (!out.empty()) eval::write_report(out, eval::report_json(info, records, details));
  if (!chart.empty()) eval::write_chart(chart, rows, "dsv4 eval: " + info.target);
  return interrupted ? 130 : 0;
}

}  // namespace dsv4::cli
