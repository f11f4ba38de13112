// The trainer's torch model against the engine (src/model) on the tiny-a checkpoint.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "base/error.h"
#include "model/forward.h"
#include "model/init.h"
#include "model/mtp.h"
#include "model/safetensors.h"
#include "model/state.h"
#include "model/weights.h"
#include "train/model.h"
#include "train/run.h"

namespace dsv4::train {
namespace {

const std::string kModel = std::string(DSV4_TEST_DATA_DIR) + "/tiny-a/checkpoint";

std::vector<int64_t> tokens_of(const std::string& name) {
  TensorStore ts = TensorStore::open_file(std::string(DSV4_TEST_DATA_DIR) + "/tiny-a/tokens.safetensors");
  return ts.read_i64(name);
}

// Engine logits (precise numerics: FP32 activations, exact weights) of every position, and
// the MTP logits of rows 0..N-2.
void engine_logits(const std::vector<int64_t>& tok, std::vector<float>& logits, std::vector<float>& mtp) {
  auto w = load_model(kModel);
  const ModelConfig& c = w->config;
  const int64_t N = static_cast<int64_t>(tok.size());
  SequenceState st(c, Numerics::kPrecise);
  logits.assign(static_cast<size_t>(N * c.vocab_size), 0.0f);
  std::vector<float> streams(static_cast<size_t>(N * c.hc_mult * c.dim));
  ForwardOutput fo;
  fo.logits = logits.data();
  fo.all_logits = true;
  fo.final_streams = streams.data();
  forward(*w, st, tok.data(), N, fo);
  mtp.assign(static_cast<size_t>((N - 1) * c.vocab_size), 0.0f);
  mtp_forward(*w, st, streams.data(), tok.data() + 1, N - 1, mtp.data(), true, nullptr, nullptr);
}

double max_abs_diff(const torch::Tensor& t, const std::vector<float>& ref) {
  torch::Tensor r = torch::from_blob(const_cast<float*>(ref.data()), {static_cast<int64_t>(ref.size())}, torch::kFloat32);
  return (t.detach().reshape({-1}).to(torch::kFloat64) - r.to(torch::kFloat64)).abs().max().item<double>();
}

// Tolerance: both sides compute in FP32 with different summation orders and math libraries.
// tiny-a's README measures the noise floor of a second correct FP32 implementation in precise
// mode at max |diff| <= 1.8e-05 (logits std ~2.5); the issue asks <= 1e-4 at every position.
constexpr double kTol = 1e-4;

TEST(TrainModel, LogitsMatchEngineOnTinyA) {
  at::set_num_threads(1);
  torch::NoGradGuard ng;
  TrainModel m = load_official(kModel);
  // 533 tokens: many windows (32), CSA (4) and HCA (16) entries, index_topk 16 exceeded.
  const std::vector<int64_t> tok = tokens_of("seq2");
  std::vector<float> ref, ref_mtp;
  engine_logits(tok, ref, ref_mtp);
  torch::Tensor t = torch::tensor(tok, torch::kInt64).view({1, -1});
  ForwardOptions opt;
  ForwardResult r = forward(m, t, opt);
  ASSERT_EQ(r.logits.size(1), static_cast<int64_t>(tok.size()));
  const double d = max_abs_diff(r.logits, ref), dm = max_abs_diff(r.mtp_logits, ref_mtp);
  std::printf("max |diff| logits %.3g, MTP logits %.3g\n", d, dm);
  EXPECT_LE(d, kTol);
  EXPECT_LE(dm, kTol);
}

TEST(TrainModel, BatchRowsEqualSingleSequences) {
  at::set_num_threads(1);
  torch::NoGradGuard ng;
  TrainModel m = load_official(kModel);
  std::vector<int64_t> a = tokens_of("seq1");
  std::vector<int64_t> b(a.rbegin(), a.rend());
  torch::Tensor ta = torch::tensor(a, torch::kInt64).view({1, -1}), tb = torch::tensor(b, torch::kInt64).view({1, -1});
  ForwardOptions opt;
  ForwardResult ra = forward(m, ta, opt), rb = forward(m, tb, opt), rab = forward(m, torch::cat({ta, tb}, 0), opt);
  EXPECT_LE((rab.logits[0] - ra.logits[0]).abs().max().item<double>(), 1e-5);
  EXPECT_LE((rab.logits[1] - rb.logits[0]).abs().max().item<double>(), 1e-5);
  // FP32 GEMMs block by the row count, so rows of a batch differ from a lone sequence by a few
  // ulp: bounded relative to the logits' scale (|logits| ~ 12 here: 1e-6 * 12 = ~6 ulp).
  const double scale = rb.mtp_logits[0].abs().max().item<double>();
  EXPECT_LE((rab.mtp_logits[1] - rb.mtp_logits[0]).abs().max().item<double>(), 1e-6 * scale);
}

ModelConfig tiny() {
  ModelConfig c = init_preset_config("tiny");
  c.vocab_size = 64;
  c.dim = 64;
  c.n_layers = 3;
  c.n_heads = 2;
  c.head_dim = 72;
  c.rope_dim = 8;
  c.q_lora_rank = 32;
  c.o_groups = 2;
  c.o_lora_rank = 32;
  c.window = 8;
  c.compress_ratios = {0, 4, 8, 0};
  c.index_n_heads = 2;
  c.index_head_dim = 32;
  c.index_topk = 4;
  c.n_routed_experts = 4;
  c.n_activated_experts = 2;
  c.moe_inter_dim = 64;
  c.n_hash_layers = 1;
  c.hc_mult = 4;
  c.n_mtp_layers = 1;
  return c;
}

// Export writes what the QAT forward computes with: the engine's logits of the exported
// FP8 / FP4 / BF16 model equal the trainer's fake-quantised forward (same tolerance as the
// FP32 parity), and differ clearly from the unquantised forward.
TEST(TrainModel, ExportedModelMatchesQatForward) {
  at::set_num_threads(1);
  torch::NoGradGuard ng;
  TrainModel m = init_model(tiny(), 5);
  // Non-trivial norms, sinks and router biases (the init sets them to constants).
  torch::manual_seed(6);
  for (auto& [n, p] : m.params)
    if (p.dim() == 1) p.add_(torch::randn_like(p) * 0.1);
  for (auto& [n, b] : m.buffers)
    if (b.is_floating_point()) b.add_(torch::randn_like(b) * 0.2);
  const std::string dir = ::testing::TempDir() + "/dsv4_train_export_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  save_model_checkpoint(dir + "/checkpoint.safetensors", m, 0);
  export_checkpoint(dir, dir + "/model", "");
  // The checkpoint round-trips bit-exactly.
  TrainModel back = load_model_checkpoint(dir + "/checkpoint.safetensors");
  for (const auto& [n, p] : m.params) ASSERT_TRUE(torch::equal(p, back.params.at(n))) << n;
  for (const auto& [n, b] : m.buffers) ASSERT_TRUE(torch::equal(b, back.buffers.at(n))) << n;
  // 67 tokens: windows of 8, CSA entries (16, top-4 of them), HCA entries (8).
  std::vector<int64_t> tok;
  for (int i = 0; i < 67; ++i) tok.push_back((i * 37 + 11) % 64);
  std::vector<float> ref, ref_mtp;
  {
    auto w = load_model(dir + "/model");
    SequenceState st(w->config, Numerics::kPrecise);
    const int64_t N = static_cast<int64_t>(tok.size()), V = w->config.vocab_size;
    ref.assign(static_cast<size_t>(N * V), 0.0f);
    std::vector<float> streams(static_cast<size_t>(N * w->config.hc_mult * w->config.dim));
    ForwardOutput fo;
    fo.logits = ref.data();
    fo.all_logits = true;
    fo.final_streams = streams.data();
    forward(*w, st, tok.data(), N, fo);
    ref_mtp.assign(static_cast<size_t>((N - 1) * V), 0.0f);
    mtp_forward(*w, st, streams.data(), tok.data() + 1, N - 1, ref_mtp.data(), true, nullptr, nullptr);
  }
  torch::Tensor t = torch::tensor(tok, torch::kInt64).view({1, -1});
  ForwardOptions opt;
  opt.qat = true;
  ForwardResult q = forward(m, t, opt);
  const double d = max_abs_diff(q.logits, ref), dm = max_abs_diff(q.mtp_logits, ref_mtp);
  opt.qat = false;
  ForwardResult f = forward(m, t, opt);
  const double dq = max_abs_diff(f.logits, ref);
  std::printf("QAT forward vs engine on the export: max |diff| logits %.3g, MTP %.3g; unquantised forward: %.3g\n", d, dm, dq);
  EXPECT_LE(d, kTol);
  EXPECT_LE(dm, kTol);
  EXPECT_GT(dq, 100 * kTol);
  std::filesystem::remove_all(dir);
}

TEST(TrainModel, RejectsOutOfRangeTokens) {
  TrainModel m = load_official(kModel);
  torch::Tensor t = torch::tensor(std::vector<int64_t>{0, 5, 512}, torch::kInt64).view({1, -1});
  try {
    forward(m, t, ForwardOptions());
    FAIL() << "no error";
  } catch (const dsv4::Error& e) {
    EXPECT_NE(std::string(e.what()).find("512"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dsv4::train
