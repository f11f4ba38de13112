// The report JSON (schema, summaries, totals, details, atomic file) and the SVG chart
// (well-formed XML, one bar per suite x mode with heights proportional to the accuracy,
// error bars, legend).
#include <expat.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "base/error.h"
#include "train/eval/chart.h"
#include "train/eval/report.h"

namespace dsv4::eval {
namespace {

using tasks::Mode;

TaskRecord rec(const std::string& suite, Mode m, bool ok, int64_t tokens, double secs, bool error = false) {
  TaskRecord r;
  r.id = suite + "/x";
  r.suite = suite;
  r.mode = m;
  r.correct = ok;
  r.completion_tokens = tokens;
  r.reasoning_tokens = tokens / 2;
  r.seconds = secs;
  r.answer = ok ? "right" : "wrong";
  if (error) r.error = "HTTP 500: boom";
  return r;
}

// math: non-think 1/4, think-high 3/4; logic: non-think 0/2 (one error), think-high 2/2.
std::vector<TaskRecord> sample_records() {
  std::vector<TaskRecord> rs;
  for (int i = 0; i < 4; ++i) {
    rs.push_back(rec("math", Mode::NonThink, i == 0, 10, 1.0));
    rs.push_back(rec("math", Mode::ThinkHigh, i != 0, 30, 2.0));
  }
  for (int i = 0; i < 2; ++i) {
    rs.push_back(rec("logic", Mode::NonThink, false, 20, 0.5, i == 1));
    rs.push_back(rec("logic", Mode::ThinkHigh, true, 40, 3.0));
  }
  return rs;
}

TEST(EvalReport, SummariesAndSchema) {
  ReportInfo info;
  info.target = "http://127.0.0.1:1";
  info.backend = "endpoint";
  info.modes = {Mode::NonThink, Mode::ThinkHigh};
  info.seed = 7;
  info.date = utc_now_iso8601();
  const Json j = report_json(info, sample_records(), /*details=*/true);
  EXPECT_EQ(j["dsv4_eval_report"], 1);
  EXPECT_EQ(j["modes"], Json::array({"non-think", "think-high"}));
  EXPECT_EQ(j["seed"], 7);
  EXPECT_EQ(j["date"].get<std::string>().size(), 20u);
  ASSERT_EQ(j["results"].size(), 4u);  // math x 2 modes, logic x 2 modes
  const Json& m0 = j["results"][0];
  EXPECT_EQ(m0["suite"], "math");
  EXPECT_EQ(m0["mode"], "non-think");
  EXPECT_EQ(m0["n"], 4);
  EXPECT_EQ(m0["correct"], 1);
  EXPECT_DOUBLE_EQ(m0["accuracy"].get<double>(), 0.25);
  const Interval ci = wilson_interval(1, 4);
  EXPECT_DOUBLE_EQ(m0["ci95"][0].get<double>(), ci.lo);
  EXPECT_DOUBLE_EQ(m0["ci95"][1].get<double>(), ci.hi);
  EXPECT_DOUBLE_EQ(m0["mean_completion_tokens"].get<double>(), 10.0);
  EXPECT_DOUBLE_EQ(m0["mean_reasoning_tokens"].get<double>(), 5.0);
  EXPECT_DOUBLE_EQ(m0["mean_latency_s"].get<double>(), 1.0);
  EXPECT_EQ(m0["errors"], 0);
  const Json& l0 = j["results"][2];
  EXPECT_EQ(l0["suite"], "logic");
  EXPECT_EQ(l0["errors"], 1);
  EXPECT_EQ(l0["accuracy"], 0.0);
  // Totals per mode over all suites, and overall.
  ASSERT_EQ(j["totals"].size(), 2u);
  EXPECT_EQ(j["totals"][1]["mode"], "think-high");
  EXPECT_EQ(j["totals"][1]["n"], 6);
  EXPECT_EQ(j["totals"][1]["correct"], 5);
  EXPECT_EQ(j["overall"]["n"], 12);
  EXPECT_EQ(j["overall"]["correct"], 6);
  // Details: one record per task and mode, in the order given.
  ASSERT_EQ(j["tasks"].size(), 12u);
  EXPECT_EQ(j["tasks"][1]["mode"], "think-high");
  for (const char* k : {"id", "suite", "mode", "correct", "detail", "answer", "reasoning", "tool_calls", "rounds",
                        "completion_tokens", "reasoning_tokens", "latency_s"})
    EXPECT_TRUE(j["tasks"][0].contains(k)) << k;
  ASSERT_TRUE(j["tasks"][10].contains("error"));
  EXPECT_EQ(j["tasks"][10]["error"], "HTTP 500: boom");
  EXPECT_FALSE(j["tasks"][9].contains("error"));
  EXPECT_FALSE(report_json(info, sample_records(), false).contains("tasks"));
}

TEST(EvalReport, WritesAtomically) {
  const std::string dir = ::testing::TempDir() + "/eval_report_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/r.json";
  ReportInfo info;
  info.modes = {Mode::NonThink, Mode::ThinkHigh};
  write_report(path, report_json(info, sample_records(), false));
  std::ifstream in(path);
  const Json back = Json::parse(in);
  EXPECT_EQ(back["results"].size(), 4u);
  for (const auto& e : std::filesystem::directory_iterator(dir)) EXPECT_EQ(e.path().filename(), "r.json");  // no temp left
  std::filesystem::remove_all(dir);
}

struct SvgScan {
  std::vector<std::map<std::string, std::string>> bars, cis, legends;
  int depth = 0;
  std::string root;
};

void XMLCALL on_start(void* ud, const XML_Char* name, const XML_Char** atts) {
  auto* s = static_cast<SvgScan*>(ud);
  if (s->depth++ == 0) s->root = name;
  std::map<std::string, std::string> a;
  for (int i = 0; atts[i]; i += 2) a[atts[i]] = atts[i + 1];
  const std::string el = name;
  if (el == "rect" && a["class"] == "bar") s->bars.push_back(a);
  if (el == "rect" && a["class"] == "legend") s->legends.push_back(a);
  if (el == "line" && a["class"] == "ci") s->cis.push_back(a);
}
void XMLCALL on_end(void* ud, const XML_Char*) { static_cast<SvgScan*>(ud)->depth--; }

SvgScan parse_svg(const std::string& svg) {
  SvgScan s;
  XML_Parser p = XML_ParserCreate(nullptr);
  XML_SetUserData(p, &s);
  XML_SetElementHandler(p, on_start, on_end);
  const bool ok = XML_Parse(p, svg.data(), static_cast<int>(svg.size()), 1) == XML_STATUS_OK;
  const std::string err = ok ? "" : XML_ErrorString(XML_GetErrorCode(p));
  XML_ParserFree(p);
  if (!ok) throw Error("SVG is not well-formed XML: " + err);
  return s;
}

TEST(EvalChart, WellFormedBarsProportionalToAccuracy) {
  auto records = sample_records();
  records.push_back(rec("a<&>\"'b", Mode::NonThink, true, 1, 0.1));  // needs escaping
  const std::vector<Summary> sums = summarize(records, {Mode::NonThink, Mode::ThinkHigh});
  ChartLayout layout;
  const SvgScan s = parse_svg(chart_svg(sums, "eval <test>", layout));
  EXPECT_EQ(s.root, "svg");
  ASSERT_EQ(s.bars.size(), sums.size());  // 3 suites x 2 modes
  ASSERT_EQ(s.cis.size(), sums.size());
  ASSERT_EQ(s.legends.size(), 2u);
  for (size_t i = 0; i < sums.size(); ++i) {
    EXPECT_EQ(s.bars[i].at("data-suite"), sums[i].suite);
    EXPECT_NEAR(std::stod(s.bars[i].at("height")), layout.plot_height * sums[i].accuracy, 0.01);
    // All bars stand on the same baseline: y + height is constant.
    EXPECT_NEAR(std::stod(s.bars[i].at("y")) + std::stod(s.bars[i].at("height")),
                std::stod(s.bars[0].at("y")) + std::stod(s.bars[0].at("height")), 0.02);
    // The error bar spans the Wilson interval.
    EXPECT_NEAR(std::stod(s.cis[i].at("y1")) - std::stod(s.cis[i].at("y2")), layout.plot_height * (sums[i].ci.hi - sums[i].ci.lo), 0.02);
  }
  EXPECT_EQ(s.bars[0].at("data-mode"), "non-think");
  EXPECT_EQ(s.bars[1].at("data-mode"), "think-high");
  // math think-high (3/4) is three times as tall as math non-think (1/4).
  EXPECT_NEAR(std::stod(s.bars[1].at("height")), 3 * std::stod(s.bars[0].at("height")), 0.02);
}

TEST(EvalChart, WritesSvgRefusesPng) {
  const std::string dir = ::testing::TempDir() + "/eval_chart_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const auto sums = summarize(sample_records(), {Mode::NonThink, Mode::ThinkHigh});
  write_chart(dir + "/c.svg", sums, "t");
  std::ifstream in(dir + "/c.svg");
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(parse_svg(ss.str()).bars.size(), 4u);
  EXPECT_THROW(write_chart(dir + "/c.png", sums, "t"), Error);
  EXPECT_THROW(write_chart(dir + "/c.txt", sums, "t"), Error);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dsv4::eval
