// The `dsv4 eval` report: accuracy per suite x mode with 95% Wilson intervals, tokens per
// answer and latency; totals per mode; optional per-task records. JSON, written atomically.
#pragma once
#include <string>
#include <vector>

#include "train/eval/runner.h"
#include "train/eval/stats.h"

namespace dsv4::eval {

struct Summary {
  std::string suite;  // "all" for the totals of a mode
  tasks::Mode mode = tasks::Mode::NonThink;
  int64_t n = 0;
  int64_t correct = 0;
  int64_t errors = 0;
  double accuracy = 0.0;  // correct / n (0 when n = 0)
  Interval ci;            // 95% Wilson interval of the accuracy
  double mean_completion_tokens = 0.0;  // per answer (all turns of a conversation)
  double mean_reasoning_tokens = 0.0;
  double mean_latency_s = 0.0;
};

// Suites in order of first appearance in `records`.
std::vector<std::string> suites_of(const std::vector<TaskRecord>& records);
// One Summary per (suite, mode), suites in order of first appearance, modes in `modes` order.
std::vector<Summary> summarize(const std::vector<TaskRecord>& records, const std::vector<tasks::Mode>& modes);
// One Summary per mode over all suites (suite "all").
std::vector<Summary> totals(const std::vector<TaskRecord>& records, const std::vector<tasks::Mode>& modes);

struct ReportInfo {
  std::string target;      // model path or endpoint URL
  std::string backend;     // "local" | "endpoint"
  std::string model_name;  // endpoint: the model name sent ("" = none)
  std::vector<tasks::Mode> modes;
  uint64_t seed = 0;
  std::string date;        // ISO 8601 UTC
  Json options = Json::object();  // anything else worth recording (suites asked, n, max_tokens, ...)
};

// {"dsv4_eval_report": 1, "target", "backend", "model", "modes", "seed", "date", "options",
//  "results": [summary...], "totals": [summary per mode...], "overall": summary,
//  "tasks": [record...] (only with details)}.
Json report_json(const ReportInfo& info, const std::vector<TaskRecord>& records, bool details);
Json summary_json(const Summary& s);
Json record_json(const TaskRecord& r);
void write_report(const std::string& path, const Json& report);  // atomic

// "2026-12-06T20:44:55Z"
std::string utc_now_iso8601();

}  // namespace dsv4::eval
