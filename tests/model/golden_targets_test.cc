// The golden logits hold for every SIMD dispatch target the kernels were compiled for and this
// CPU runs (AVX-512, AVX2, SSE4, scalar ...): each target is forced in turn and the seq1
// prefill (both modes) and a seq0 prefill-then-decode run are compared with the golden files
// under the same tolerances as model_golden_logits_test.
#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "base/file.h"
#include "ops/linear_kernels.h"
#include "runner.h"

using namespace dsv4;
using namespace dsv4::test;

namespace {

nlohmann::json tolerance_of(const std::string& file, const std::string& tensor) {
  auto m = nlohmann::json::parse(read_file(kTinyA + "/manifest.json"));
  for (const auto& f : m["files"])
    if (f.value("path", std::string()) == file || f.value("file", std::string()) == file)
      if (f.contains("tolerance") && f["tolerance"].contains(tensor)) return f["tolerance"][tensor];
  ADD_FAILURE() << "no tolerance for " << file << " " << tensor << " in manifest.json";
  return nlohmann::json::object();
}

void check(const std::string& file, const std::string& tensor, const std::vector<float>& ours, const std::string& target) {
  const int64_t V = tiny_model()->config.vocab_size;
  std::vector<float> gv = golden(file).read_f32(tensor);
  ASSERT_EQ(gv.size(), ours.size()) << file;
  Diff d = diff(ours, gv);
  const int64_t rows = static_cast<int64_t>(gv.size()) / V;
  const double agree = argmax_agreement(ours.data(), gv.data(), rows, V);
  std::printf("[%s] %s %s: max %.3g mean %.3g argmax %.3f\n", target.c_str(), file.c_str(), tensor.c_str(), d.max_abs, d.mean_abs, agree);
  const auto tol = tolerance_of(file, tensor);
  if (tol.contains("max_abs")) EXPECT_LE(d.max_abs, tol["max_abs"].get<double>()) << target << " " << file;
  if (tol.contains("mean_abs_max")) EXPECT_LE(d.mean_abs, tol["mean_abs_max"].get<double>()) << target << " " << file;
  if (tol.contains("argmax_agreement_min") && rows > 1)
    EXPECT_GE(agree, tol["argmax_agreement_min"].get<double>()) << target << " " << file;
}

}  // namespace

TEST(GoldenEveryTarget, PrefillAndDecodeWithinTolerance) {
  const std::vector<int64_t> targets = linear_kernels::available_targets();
  ASSERT_FALSE(targets.empty());
  const auto seq1 = seq_tokens("seq1");
  const auto seq0 = seq_tokens("seq0");
  for (int64_t t : targets) {
    linear_kernels::force_target(t);
    const std::string name = linear_kernels::current_target_name();
    SCOPED_TRACE(name);
    check("precise/seq1_prefill.safetensors", "logits_all", prefill_logits(Numerics::kPrecise, seq1), name);
    check("reference/seq1_prefill.safetensors", "logits_all", prefill_logits(Numerics::kReference, seq1), name);
    check("precise/seq0_decode_k17.safetensors", "logits", incremental_logits(Numerics::kPrecise, seq0, 17), name);
    check("reference/seq0_decode_k17.safetensors", "logits", incremental_logits(Numerics::kReference, seq0, 17), name);
  }
  linear_kernels::force_target(0);
  std::printf("checked %zu targets\n", targets.size());
}
