// End-to-end logits against the golden files of tests/data/tiny-a (both numerics modes):
// every prefill (logits_all, logits_last), every incremental run (decode_k*), every MTP file.
// Precise: max |diff| <= 1e-3 per tensor. Reference: the per-file tolerances of manifest.json
// (mean |diff| and argmax agreement per logits matrix; logits_last vectors as a smoke test).
#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "base/file.h"
#include "runner.h"

using namespace dsv4;
using namespace dsv4::test;

namespace {

struct Case {
  std::string mode, file, seq, kind;
  int64_t k = 0;
  nlohmann::json tolerance;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.file; }

std::vector<Case> cases() {
  std::vector<Case> out;
  auto m = nlohmann::json::parse(read_file(kTinyA + "/manifest.json"));
  for (const auto& f : m["files"]) {
    if (!f.contains("mode") || !f.contains("tolerance")) continue;
    Case c;
    c.mode = f["mode"];
    c.file = f["path"];
    c.seq = f["sequence"];
    c.kind = f["kind"];
    if (c.kind == "debug_prefill") continue;  // same logits as <seq>_prefill
    if (c.kind == "incremental") {
      auto pos = c.file.find("_decode_k");
      c.k = std::stoll(c.file.substr(pos + 9));
    }
    c.tolerance = f["tolerance"];
    out.push_back(c);
  }
  return out;
}

std::string case_name(const testing::TestParamInfo<Case>& info) {
  std::string s = info.param.file;
  for (char& ch : s)
    if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

class GoldenLogits : public testing::TestWithParam<Case> {};

TEST_P(GoldenLogits, WithinTolerance) {
  const Case& cs = GetParam();
  const Numerics nm = cs.mode == "precise" ? Numerics::kPrecise : Numerics::kReference;
  const std::vector<int64_t> tokens = seq_tokens(cs.seq);
  const int64_t N = static_cast<int64_t>(tokens.size()), V = tiny_model()->config.vocab_size;
  const TensorStore& g = golden(cs.file);
  // name -> (ours, rows)
  std::vector<std::pair<std::string, std::vector<float>>> ours;
  if (cs.kind == "prefill") {
    auto all = prefill_logits(nm, tokens);
    ours.push_back({"logits_all", all});
    ours.push_back({"logits_last", std::vector<float>(all.end() - V, all.end())});
  } else if (cs.kind == "incremental") {
    ours.push_back({"logits", incremental_logits(nm, tokens, cs.k)});
  } else if (cs.kind == "mtp") {
    auto all = mtp_logits(nm, tokens);
    ours.push_back({"logits_all", all});
    ours.push_back({"logits_last", std::vector<float>(all.end() - V, all.end())});
  } else {
    FAIL() << "unknown golden file kind " << cs.kind << " in manifest.json";
  }
  int checked = 0;
  for (const auto& [name, v] : ours) {
    if (!cs.tolerance.contains(name)) continue;
    std::vector<float> gv = g.read_f32(name);
    ASSERT_EQ(gv.size(), v.size()) << name;
    const int64_t rows = static_cast<int64_t>(gv.size()) / V;
    Diff d = diff(v, gv);
    double agree = argmax_agreement(v.data(), gv.data(), rows, V);
    std::printf("%s %s: max %.3g mean %.3g argmax agreement %.3f (%lld rows, N=%lld)\n", cs.file.c_str(), name.c_str(),
                d.max_abs, d.mean_abs, agree, (long long)rows, (long long)N);
    const auto& tol = cs.tolerance[name];
    if (tol.contains("max_abs")) EXPECT_LE(d.max_abs, tol["max_abs"].get<double>()) << name;
    if (tol.contains("mean_abs_max")) EXPECT_LE(d.mean_abs, tol["mean_abs_max"].get<double>()) << name;
    if (tol.contains("argmax_agreement_min") && rows > 1)
      EXPECT_GE(agree, tol["argmax_agreement_min"].get<double>()) << name;
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

INSTANTIATE_TEST_SUITE_P(TinyA, GoldenLogits, testing::ValuesIn(cases()), case_name);

}  // namespace
