// Gradient checks (double precision central differences on a tiny config) of the custom
// autograd functions and every part of the trainer's V4 graph; Muon and AdamW against steps
// computed by hand (plain scalar loops, independent of the code under test).
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "model/init.h"
#include "train/model.h"
#include "tiny_config.h"
#include "train/optim.h"

namespace dsv4::train {
namespace {

using torch::Tensor;

ModelConfig tiny() { return test::tiny_config(); }

// Central differences of f at `n` coordinates of x (chosen by a fixed stride) vs autograd.
void check_grad(const std::string& what, Tensor x, const std::function<Tensor()>& f, int n = 6, double h = 1e-6,
                double rtol = 1e-5) {
  ASSERT_EQ(x.scalar_type(), torch::kFloat64);
  if (x.grad().defined()) x.mutable_grad().zero_();
  Tensor y = f();
  y.backward();
  ASSERT_TRUE(x.grad().defined()) << what << ": no gradient";
  Tensor g = x.grad().reshape({-1}).clone();
  Tensor flat = x.detach().view({-1});
  const int64_t N = flat.numel();
  const int64_t stride = std::max<int64_t>(1, N / n);
  double max_g = g.abs().max().item<double>();
  ASSERT_GT(max_g, 0.0) << what << ": gradient identically zero";
  int checked = 0;
  for (int64_t i = (stride / 2) % N; i < N && checked < n; i += stride, ++checked) {
    torch::NoGradGuard ng;
    const double x0 = flat[i].item<double>();
    flat[i] = x0 + h;
    const double fp = f().item<double>();
    flat[i] = x0 - h;
    const double fm = f().item<double>();
    flat[i] = x0;
    const double fd = (fp - fm) / (2 * h);
    const double ad = g[i].item<double>();
    EXPECT_NEAR(ad, fd, rtol * std::max(1.0, max_g) + 1e-9) << what << " coordinate " << i;
  }
}

TEST(TrainGrad, SinkhornMatchesPlainAutogradAndFiniteDifferences) {
  torch::manual_seed(1);
  Tensor x = torch::randn({5, 4, 4}, torch::kFloat64).requires_grad_(true);
  Tensor wts = torch::randn({5, 4, 4}, torch::kFloat64);
  // Forward equals the plain iterations.
  Tensor a = sinkhorn(x, 20, 1e-6), b = sinkhorn_plain(x, 20, 1e-6);
  EXPECT_LE((a - b).abs().max().item<double>(), 1e-14);
  // Doubly stochastic (up to eps).
  EXPECT_LE((a.sum(-2) - 1).abs().max().item<double>(), 1e-5);
  // Backward equals autograd through the plain iterations.
  Tensor ga = torch::autograd::grad({(sinkhorn(x, 20, 1e-6) * wts).sum()}, {x})[0];
  Tensor gb = torch::autograd::grad({(sinkhorn_plain(x, 20, 1e-6) * wts).sum()}, {x})[0];
  EXPECT_LE((ga - gb).abs().max().item<double>(), 1e-12);
  check_grad("sinkhorn", x, [&] { return (sinkhorn(x, 20, 1e-6) * wts).sum(); }, 20);
}

TEST(TrainGrad, FakeQuantIsStraightThrough) {
  torch::manual_seed(2);
  Tensor w = torch::randn({8, 64}, torch::kFloat32).requires_grad_(true);
  Tensor g = torch::randn({8, 64}, torch::kFloat32);
  for (StoreFormat f : {StoreFormat::kFp8Block, StoreFormat::kFp4, StoreFormat::kBf16}) {
    Tensor q = fake_quant(w, f, 128);
    Tensor gw = torch::autograd::grad({(q * g).sum()}, {w})[0];
    EXPECT_TRUE(torch::equal(gw, g));
    EXPECT_GT((q - w).abs().max().item<double>(), 0.0);  // really quantised
  }
  // FP4: 8 magnitudes per power-of-two scale; a block of 32 holds at most 15 distinct values.
  Tensor q = fake_quant(w, StoreFormat::kFp4, 128).detach();
  EXPECT_LE(std::get<0>(at::_unique(q[0].narrow(0, 0, 32))).numel(), 15);
}

// Loss of the whole model touching every output: logits, MTP logits, balance loss; with
// `kl`, the indexer's KL loss alone (its target is detached by design, so finite differences
// agree with autograd only for the indexer's own parameters).
Tensor model_loss(const TrainModel& m, const Tensor& tok, const Tensor& wl, const Tensor& wm, IndexerPhase phase,
                  bool kl) {
  ForwardOptions o;
  o.indexer = phase;
  o.indexer_loss = kl;
  ForwardResult r = forward(m, tok, o);
  if (kl) return r.indexer_kl;
  return (r.logits * wl).sum() + (r.mtp_logits * wm).sum() + r.balance_loss;
}

TEST(TrainGrad, EveryPartMatchesFiniteDifferences) {
  at::set_num_threads(1);
  const ModelConfig c = tiny();
  TrainModel m = init_model(c, 7).to(torch::kFloat64);
  // Larger mHC / router / sink values than the init so that every path carries signal.
  torch::manual_seed(3);
  const int64_t S = 21;  // windows of 4, CSA entries (5, top-2 of them), HCA entries (2)
  Tensor tok = torch::randint(0, c.vocab_size, {2, S}, torch::kInt64);
  Tensor wl = torch::randn({2, S, c.vocab_size}, torch::kFloat64);
  Tensor wm = torch::randn({2, S - 1, c.vocab_size}, torch::kFloat64);
  const char* names[] = {
      "layers.0.hc_attn_fn",                    // mHC mixes (incl. Sinkhorn)
      "layers.1.hc_ffn_base",                   // mHC static part
      "layers.0.attn.attn_sink",                // attention with sinks
      "layers.0.attn.wq_b.weight",              // query path
      "layers.0.attn.wo_a.weight",              // grouped output
      "layers.1.attn.compressor.wkv.weight",    // CSA compressor values
      "layers.1.attn.compressor.wgate.weight",  // CSA compressor gates
      "layers.1.attn.compressor.ape",
      "layers.2.attn.compressor.wgate.weight",  // HCA compressor
      "layers.2.ffn.gate.weight",               // routing weights + balance loss
      "layers.0.ffn.gate.weight",               // hash layer: weights only
      "layers.2.ffn.experts.1.w1.weight",
      "layers.2.ffn.shared_experts.w2.weight",
      "mtp.0.e_proj.weight",                    // MTP
      "mtp.0.hc_head_fn",
      "hc_head_scale",
      "embed.weight",
  };
  for (IndexerPhase ph : {IndexerPhase::kDense, IndexerPhase::kSparse})
    for (const char* n : names) {
      Tensor x = m.params.at(n);
      check_grad(std::string(n) + (ph == IndexerPhase::kDense ? " (dense)" : " (sparse)"), x,
                 [&] { return model_loss(m, tok, wl, wm, ph, false); }, 3);
    }
  // The indexer through its KL loss.
  const char* indexer[] = {"layers.1.attn.indexer.wq_b.weight", "layers.1.attn.indexer.weights_proj.weight",
                           "layers.1.attn.indexer.compressor.wkv.weight", "layers.1.attn.indexer.compressor.wgate.weight",
                           "layers.1.attn.indexer.compressor.norm.weight"};
  for (IndexerPhase ph : {IndexerPhase::kDense, IndexerPhase::kSparse})
    for (const char* n : indexer)
      check_grad(std::string(n) + (ph == IndexerPhase::kDense ? " KL (dense)" : " KL (sparse)"), m.params.at(n),
                 [&] { return model_loss(m, tok, wl, wm, ph, true); }, 4);
}

TEST(TrainGrad, IndexerLearnsOnlyFromItsKl) {
  const ModelConfig c = tiny();
  TrainModel m = init_model(c, 8);
  Tensor tok = torch::randint(0, c.vocab_size, {1, 17}, torch::kInt64);
  ForwardOptions o;
  o.indexer_loss = true;
  ForwardResult r = forward(m, tok, o);
  Tensor g = torch::autograd::grad({r.logits.sum()}, {m.params.at("layers.1.attn.indexer.wq_b.weight")}, {}, true, false, true)[0];
  EXPECT_TRUE(!g.defined() || g.abs().max().item<double>() == 0.0);
  // ... and the KL does not reach the main model.
  Tensor g2 = torch::autograd::grad({r.indexer_kl}, {m.params.at("layers.1.attn.wq_a.weight")}, {}, true, false, true)[0];
  EXPECT_TRUE(!g2.defined() || g2.abs().max().item<double>() == 0.0);
  Tensor g3 = torch::autograd::grad({r.indexer_kl}, {m.params.at("layers.1.attn.indexer.wq_b.weight")}, {}, true, false, true)[0];
  ASSERT_TRUE(g3.defined());
  EXPECT_GT(g3.abs().max().item<double>(), 0.0);
}

// The block-banded window attention (default) against the S x S form it replaced (the
// oracle): logits, MTP logits, indexer KL and gradients, in both indexer phases, for lengths
// below, at and between multiples of the window (FP64: only summation order differs).
TEST(TrainAttention, BlockBandedMatchesDense) {
  at::set_num_threads(1);
  const ModelConfig c = tiny();
  const TrainModel m = init_model(c, 14).to(torch::kFloat64);
  torch::manual_seed(15);
  for (const int64_t S : {3L, 8L, 19L}) {
    Tensor tok = torch::randint(0, c.vocab_size, {2, S}, torch::kInt64);
    for (IndexerPhase ph : {IndexerPhase::kDense, IndexerPhase::kSparse}) {
      ForwardOptions o;
      o.indexer = ph;
      o.indexer_loss = true;
      ForwardOptions od = o;
      od.dense_attention = true;
      ForwardResult b = forward(m, tok, o), d = forward(m, tok, od);
      const std::string what = "S " + std::to_string(S) + (ph == IndexerPhase::kDense ? " dense" : " sparse");
      auto rel = [](const Tensor& x, const Tensor& y) { return ((x - y).abs().max() / y.abs().max().clamp_min(1e-300)).item<double>(); };
      EXPECT_LE(rel(b.logits, d.logits), 1e-12) << what;
      EXPECT_LE(rel(b.mtp_logits, d.mtp_logits), 1e-12) << what;
      EXPECT_NEAR(b.indexer_kl.item<double>(), d.indexer_kl.item<double>(), 1e-12 * (1 + std::abs(d.indexer_kl.item<double>()))) << what;
      for (const char* n : {"layers.0.attn.wq_a.weight", "layers.1.attn.wkv.weight", "layers.2.attn.attn_sink",
                            "layers.1.attn.indexer.wq_b.weight"}) {
        if (S < 4 && std::string(n).find("indexer") != std::string::npos) continue;  // no CSA entry yet: no KL
        auto grad_of = [&](const ForwardResult& r) {
          Tensor loss = (r.logits * r.logits).mean() + r.mtp_logits.mean() + r.indexer_kl;
          return torch::autograd::grad({loss}, {m.params.at(n)}, {}, true, false, true)[0];
        };
        Tensor gb = grad_of(b), gd = grad_of(d);
        ASSERT_TRUE(gd.defined()) << what << " " << n;
        EXPECT_GT(gd.abs().max().item<double>(), 0.0) << what << " " << n;
        EXPECT_LE(rel(gb, gd), 1e-10) << what << " " << n;
      }
    }
  }
}

TEST(TrainBalance, AuxLossFreeBiasEvensOutASkewedStream) {
  at::set_num_threads(1);
  torch::NoGradGuard ng;
  const ModelConfig c = tiny();
  TrainModel m = init_model(c, 10);
  // Skew: learned-routing layers start with a bias that favours the first experts.
  for (auto& [n, b] : m.buffers)
    if (n.find("gate.bias") != std::string::npos)
      for (int64_t e = 0; e < b.size(0); ++e) b[e] = e < c.n_activated_experts ? 1.0 : 0.0;
  torch::manual_seed(11);
  Tensor tok = torch::randint(0, c.vocab_size, {4, 32}, torch::kInt64);
  ForwardOptions o;
  o.mtp = true;
  double first = 0, last = 0;
  const int steps = 60;
  for (int s = 0; s < steps; ++s) {
    ForwardResult r = forward(m, tok, o);
    const double lmm = update_routing_bias(m, r, 0.02);
    if (s == 0) first = lmm;
    if (s >= steps - 10) last += lmm / 10;
  }
  std::printf("expert load max/mean: first step %.3f, mean of the last 10 steps %.3f\n", first, last);
  EXPECT_NEAR(first, static_cast<double>(c.n_routed_experts) / c.n_activated_experts, 0.05);  // all on the favoured experts
  EXPECT_LT(last, 1.35);
}

TEST(TrainMixedPrecision, Bf16ProjectionsStayCloseAndTrainFp32Masters) {
  at::set_num_threads(1);
  const ModelConfig c = tiny();
  TrainModel m = init_model(c, 12);
  torch::manual_seed(13);
  Tensor tok = torch::randint(0, c.vocab_size, {2, 24}, torch::kInt64);
  ForwardOptions o;
  ForwardResult f = forward(m, tok, o);
  o.bf16 = true;
  ForwardResult b = forward(m, tok, o);
  const double rel = ((b.logits - f.logits).norm() / f.logits.norm()).item<double>();
  std::printf("BF16 projections vs FP32: relative Frobenius difference of the logits %.3g\n", rel);
  EXPECT_GT(rel, 1e-5);  // really computed in BF16
  // BF16 keeps 8 significant bits (relative rounding 2^-9) of every projection's inputs,
  // weights and outputs; on random weights a few near-tied discrete choices (indexer top-k,
  // MoE top-k) flip too. Measured 0.07; a broken path gives O(1).
  EXPECT_LT(rel, 0.15);
  b.logits.sum().backward();
  const Tensor& g = m.params.at("layers.0.attn.wq_a.weight").grad();
  ASSERT_TRUE(g.defined());
  EXPECT_EQ(g.scalar_type(), torch::kFloat32);
  EXPECT_GT(g.abs().max().item<double>(), 0.0);
}

// ---- optimisers ----

TEST(TrainOptim, AdamWMatchesHandComputedSteps) {
  OptimConfig cfg;
  cfg.weight_decay = 0.1;
  cfg.beta1 = 0.9;
  cfg.beta2 = 0.95;
  cfg.eps = 1e-8;
  Tensor p = torch::tensor({1.0, -2.0, 0.5}, torch::kFloat64);
  Tensor m = torch::zeros({3}, torch::kFloat64), v = torch::zeros({3}, torch::kFloat64);
  double hp[3] = {1.0, -2.0, 0.5}, hm[3] = {0, 0, 0}, hv[3] = {0, 0, 0};
  const double grads[2][3] = {{0.3, -0.1, 2.0}, {-0.2, 0.4, 1.0}};
  const double lr = 0.01;
  for (int t = 1; t <= 2; ++t) {
    Tensor g = torch::tensor({grads[t - 1][0], grads[t - 1][1], grads[t - 1][2]}, torch::kFloat64);
    adamw_step(p, g, m, v, t, lr, cfg);
    for (int i = 0; i < 3; ++i) {
      const double gi = grads[t - 1][i];
      hm[i] = 0.9 * hm[i] + 0.1 * gi;
      hv[i] = 0.95 * hv[i] + 0.05 * gi * gi;
      const double mh = hm[i] / (1 - std::pow(0.9, t)), vh = hv[i] / (1 - std::pow(0.95, t));
      hp[i] = hp[i] * (1 - lr * 0.1) - lr * mh / (std::sqrt(vh) + 1e-8);
    }
  }
  // First step by hand: p0 (1 - 0.001) - 0.01 * sign(g) = 0.999 - 0.01 = 0.989 for p[0], etc.
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(p[i].item<double>(), hp[i], 1e-12);
}

// Plain-loop Newton-Schulz and Muon step (double), independent of the tensor code.
using Mat = std::vector<std::vector<double>>;
Mat mul(const Mat& a, const Mat& b) {
  Mat c(a.size(), std::vector<double>(b[0].size(), 0.0));
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t k = 0; k < b.size(); ++k)
      for (size_t j = 0; j < b[0].size(); ++j) c[i][j] += a[i][k] * b[k][j];
  return c;
}
Mat tr(const Mat& a) {
  Mat t(a[0].size(), std::vector<double>(a.size()));
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t j = 0; j < a[0].size(); ++j) t[j][i] = a[i][j];
  return t;
}

TEST(TrainOptim, MuonMatchesHandComputedStep) {
  OptimConfig cfg;
  cfg.weight_decay = 0.1;
  const Mat G = {{0.5, -1.0, 0.25}, {2.0, 0.1, -0.3}};  // 2 x 3: wide
  const Mat P = {{0.1, 0.2, 0.3}, {-0.4, 0.5, -0.6}};
  const double lr = 0.02, mu = 0.95;
  // Momentum buffer starts at 0: buf = g; Nesterov u = g + 0.95 g = 1.95 g.
  Mat X = G;
  double fro = 0;
  for (auto& r : X)
    for (double& x : r) {
      x *= 1 + mu;
      fro += x * x;
    }
  for (auto& r : X)
    for (double& x : r) x /= std::sqrt(fro) + 1e-7;
  auto iter = [&](double a, double b, double c) {
    Mat A = mul(X, tr(X)), AA = mul(A, A);
    Mat Bm = A;
    for (size_t i = 0; i < A.size(); ++i)
      for (size_t j = 0; j < A.size(); ++j) Bm[i][j] = b * A[i][j] + c * AA[i][j];
    Mat BX = mul(Bm, X);
    for (size_t i = 0; i < X.size(); ++i)
      for (size_t j = 0; j < X[0].size(); ++j) X[i][j] = a * X[i][j] + BX[i][j];
  };
  for (int i = 0; i < 8; ++i) iter(3.4445, -4.7750, 2.0315);
  for (int i = 0; i < 2; ++i) iter(2.0, -1.5, 0.5);
  const double scale = 0.18 * std::sqrt(3.0);
  Tensor p = torch::tensor({0.1, 0.2, 0.3, -0.4, 0.5, -0.6}, torch::kFloat64).view({2, 3});
  Tensor g = torch::tensor({0.5, -1.0, 0.25, 2.0, 0.1, -0.3}, torch::kFloat64).view({2, 3});
  Tensor buf = torch::zeros({2, 3}, torch::kFloat64);
  muon_step(p, g, buf, lr, cfg);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) EXPECT_NEAR(p[i][j].item<double>(), P[i][j] * (1 - lr * 0.1) - lr * scale * X[i][j], 1e-12);
  // The same matrix transposed (tall) gives the transposed update.
  Tensor pt = torch::tensor({0.1, 0.2, 0.3, -0.4, 0.5, -0.6}, torch::kFloat64).view({2, 3}).t().contiguous();
  Tensor buft = torch::zeros({3, 2}, torch::kFloat64);
  muon_step(pt, g.t().contiguous(), buft, lr, cfg);
  EXPECT_LE((pt.t() - p).abs().max().item<double>(), 1e-12);
}

TEST(TrainOptim, NewtonSchulzOrthogonalises) {
  torch::manual_seed(4);
  Tensor g = torch::randn({16, 48}, torch::kFloat64);
  Tensor o = newton_schulz(g, torch::kFloat64);
  Tensor sv = torch::linalg_svdvals(o);
  // The quintic phase brings singular values into ~[0.7, 1.2]; the (2, -1.5, 0.5) phase has
  // slope 0 at 1 and pulls them close to 1 for a well-conditioned matrix.
  EXPECT_LE((sv - 1).abs().max().item<double>(), 0.02) << sv;
  // In BF16 (the trainer's default) the result is the same up to BF16 rounding.
  Tensor ob = newton_schulz(g.to(torch::kFloat32), torch::kBFloat16).to(torch::kFloat64);
  const double rel = ((ob - o).norm() / o.norm()).item<double>();
  EXPECT_LT(rel, 0.05) << rel;
  EXPECT_LE((torch::linalg_svdvals(ob) - 1).abs().max().item<double>(), 0.1);
}

TEST(TrainOptim, OptimizerSplitsMuonAndAdamW) {
  const ModelConfig c = tiny();
  TrainModel m = init_model(c, 9);
  Optimizer opt(m, OptimConfig());
  const auto st = opt.state();
  EXPECT_TRUE(st.count("muon.buf.layers.0.attn.wq_a.weight"));
  EXPECT_TRUE(st.count("muon.buf.layers.0.ffn.experts.0.w1.weight"));
  EXPECT_TRUE(st.count("adam.m.embed.weight"));
  EXPECT_TRUE(st.count("adam.m.head.weight"));
  EXPECT_TRUE(st.count("adam.m.layers.0.hc_attn_fn"));
  EXPECT_TRUE(st.count("adam.m.layers.2.ffn.gate.weight"));
  EXPECT_TRUE(st.count("adam.m.layers.0.attn_norm.weight"));
  EXPECT_FALSE(st.count("adam.m.layers.2.ffn.gate.bias"));  // a buffer (aux-loss-free bias)
}

}  // namespace
}  // namespace dsv4::train
