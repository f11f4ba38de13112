#include "train/eval/report.h"

#include <algorithm>
#include <ctime>

#include "base/file.h"
#include "train/eval/modes.h"

namespace dsv4::eval {
namespace {

Summary summarize_one(const std::string& suite, tasks::Mode mode, const std::vector<const TaskRecord*>& rs) {
  Summary s;
  s.suite = suite;
  s.mode = mode;
  s.n = static_cast<int64_t>(rs.size());
  double tokens = 0.0, reasoning = 0.0, seconds = 0.0;
  for (const TaskRecord* r : rs) {
    s.correct += r->correct ? 1 : 0;
    s.errors += r->error.empty() ? 0 : 1;
    tokens += static_cast<double>(r->completion_tokens);
    reasoning += static_cast<double>(r->reasoning_tokens);
    seconds += r->seconds;
  }
  if (s.n > 0) {
    const double n = static_cast<double>(s.n);
    s.accuracy = static_cast<double>(s.correct) / n;
    s.mean_completion_tokens = tokens / n;
    s.mean_reasoning_tokens = reasoning / n;
    s.mean_latency_s = seconds / n;
  }
  s.ci = wilson_interval(s.correct, s.n);
  return s;
}

}  // namespace

std::vector<std::string> suites_of(const std::vector<TaskRecord>& records) {
  std::vector<std::string> out;
  for (const TaskRecord& r : records)
    if (std::find(out.begin(), out.end(), r.suite) == out.end()) out.push_back(r.suite);
  return out;
}

std::vector<Summary> summarize(const std::vector<TaskRecord>& records, const std::vector<tasks::Mode>& modes) {
  std::vector<Summary> out;
  for (const std::string& suite : suites_of(records))
    for (tasks::Mode m : modes) {
      std::vector<const TaskRecord*> rs;
      for (const TaskRecord& r : records)
        if (r.suite == suite && r.mode == m) rs.push_back(&r);
      out.push_back(summarize_one(suite, m, rs));
    }
  return out;
}

std::vector<Summary> totals(const std::vector<TaskRecord>& records, const std::vector<tasks::Mode>& modes) {
  std::vector<Summary> out;
  for (tasks::Mode m : modes) {
    std::vector<const TaskRecord*> rs;
    for (const TaskRecord& r : records)
      if (r.mode == m) rs.push_back(&r);
    out.push_back(summarize_one("all", m, rs));
  }
  return out;
}

Json summary_json(const Summary& s) {
  return Json{{"suite", s.suite},
              {"mode", mode_key(s.mode)},
              {"n", s.n},
              {"correct", s.correct},
              {"accuracy", s.accuracy},
              {"ci95", Json::array({s.ci.lo, s.ci.hi})},
              {"mean_completion_tokens", s.mean_completion_tokens},
              {"mean_reasoning_tokens", s.mean_reasoning_tokens},
              {"mean_latency_s", s.mean_latency_s},
              {"errors", s.errors}};
}

Json record_json(const TaskRecord& r) {
  Json j{{"id", r.id},
         {"suite", r.suite},
         {"mode", mode_key(r.mode)},
         {"correct", r.correct},
         {"detail", r.detail},
         {"answer", r.answer},
         {"reasoning", r.reasoning},
         {"tool_calls", r.calls},
         {"rounds", r.rounds},
         {"completion_tokens", r.completion_tokens},
         {"reasoning_tokens", r.reasoning_tokens},
         {"latency_s", r.seconds}};
  if (!r.error.empty()) j["error"] = r.error;
  return j;
}

Json report_json(const ReportInfo& info, const std::vector<TaskRecord>& records, bool details) {
  Json modes = Json::array();
  for (tasks::Mode m : info.modes) modes.push_back(mode_key(m));
  Json j{{"dsv4_eval_report", 1},
         {"target", info.target},
         {"backend", info.backend},
         {"model", info.model_name},
         {"modes", modes},
         {"seed", info.seed},
         {"date", info.date},
         {"options", info.options}};
  Json results = Json::array();
  for (const Summary& s : summarize(records, info.modes)) results.push_back(summary_json(s));
  j["results"] = std::move(results);
  Json tot = Json::array();
  for (const Summary& s : totals(records, info.modes)) tot.push_back(summary_json(s));
  j["totals"] = std::move(tot);
  std::vector<const TaskRecord*> all;
  for (const TaskRecord& r : records) all.push_back(&r);
  Json overall = summary_json(summarize_one("all", tasks::Mode::NonThink, all));
  overall.erase("mode");
  j["overall"] = std::move(overall);
  if (details) {
    Json ts = Json::array();
    for (const TaskRecord& r : records) ts.push_back(record_json(r));
    j["tasks"] = std::move(ts);
  }
  return j;
}

void write_report(const std::string& path, const Json& report) { write_file_atomic(path, report.dump(2) + "\n"); }

std::string utc_now_iso8601() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace dsv4::eval
