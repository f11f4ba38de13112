// The training loop (torch): batches from token shards, next-token + MTP loss, sequence-wise
// balance loss, aux-loss-free bias updates, indexer warm-up, LR schedule, gradient clipping,
// held-out loss, atomic checkpoints and bit-exact resume.
#include <ATen/Parallel.h>
#include <torch/types.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/error.h"
#include "base/file.h"
#include "model/init.h"
#include "model/safetensors.h"
#include "train/checkpoint.h"
#include "train/dist.h"
#include "train/model.h"
#include "train/optim.h"
#include "train/plot.h"
#include "train/run.h"
#include "train/token_data.h"

namespace dsv4::train {

namespace fs = std::filesystem;
using torch::Tensor;

namespace {

std::vector<float> to_f32(const Tensor& t) {
  Tensor c = t.detach().to(torch::kFloat32).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

std::vector<TensorData> model_tensors(const TrainModel& m) {
  std::vector<TensorData> out;
  for (const std::string& n : m.names) {
    const Tensor& p = m.params.at(n);
    out.push_back(TensorData::f32("param." + n, p.sizes().vec(), to_f32(p).data()));
  }
  for (const auto& [n, b] : m.buffers) {
    if (b.scalar_type() == torch::kInt64) {
      Tensor c = b.contiguous();
      out.push_back(TensorData::i64("buffer." + n, c.sizes().vec(), c.data_ptr<int64_t>()));
    } else {
      out.push_back(TensorData::f32("buffer." + n, b.sizes().vec(), to_f32(b).data()));
    }
  }
  return out;
}

// Checkpoint tensors: param.NAME, buffer.NAME, optim.KEY, meta.* (see checkpoint.h).
void save_checkpoint(const std::string& path, const RunConfig& r, const TrainModel& m, const Optimizer& opt,
                     int64_t step) {
  std::vector<TensorData> out = model_tensors(m);
  for (const auto& [k, t] : opt.state()) out.push_back(TensorData::f32("optim." + k, t.sizes().vec(), to_f32(t).data()));
  CheckpointMeta meta;
  meta.step = step;
  meta.model_config = config_to_hf_json(m.config);
  meta.run = run_identity(r);
  append_meta(out, meta);
  write_safetensors(path, out);
}

void copy_into(const dsv4::Tensor& src, Tensor& dst, const std::string& path) {
  const size_t want = static_cast<size_t>(dst.numel()) * dst.element_size();
  if (src.nbytes != want || src.shape != dst.sizes().vec())
    throw Error(path + ": tensor " + src.name + " has shape " + src.shape_str() + ", the run's model needs another");
  torch::NoGradGuard ng;
  Tensor c = torch::empty_like(dst);
  std::memcpy(c.data_ptr(), src.data, want);
  dst.copy_(c);
}

int64_t load_checkpoint(const std::string& path, const RunConfig& r, TrainModel& m, Optimizer& opt) {
  TensorStore st = TensorStore::open_file(path);
  const CheckpointMeta meta = read_meta(st, path);
  check_resume(meta, r, config_to_hf_json(m.config), path);
  for (const std::string& n : m.names) copy_into(st.get("param." + n), m.params.at(n), path);
  for (auto& [n, b] : m.buffers) copy_into(st.get("buffer." + n), b, path);
  std::map<std::string, Tensor> s;
  for (const auto& [k, t] : opt.state()) {
    Tensor c = torch::empty_like(t);
    copy_into(st.get("optim." + k), c, path);
    s[k] = c;
  }
  opt.load_state(s, meta.step);
  return meta.step;
}

struct Losses {
  Tensor total, ce, mtp;
  ForwardResult fr;
};

}  // namespace

Tensor masked_cross_entropy(const Tensor& logits, const Tensor& targets, const Tensor& mask) {
  const int64_t V = logits.size(-1);
  Tensor ce = at::cross_entropy_loss(logits.reshape({-1, V}), targets.reshape({-1}), {}, at::Reduction::None);
  Tensor m = mask.reshape({-1}).to(ce.scalar_type());
  return (ce * m).sum() / m.sum().clamp_min(1.0);
}

namespace {

// mask: [B, S+1] (1 = token is a target) or undefined (every token).
Losses compute_loss(const RunConfig& r, const TrainModel& m, const Tensor& win, const Tensor& mask, bool indexer_dense,
                    bool train) {
  const int64_t S = r.seq_len, V = m.config.vocab_size;
  Tensor inp = win.narrow(1, 0, S);
  ForwardOptions fo;
  fo.qat = r.qat;
  fo.bf16 = r.bf16;
  fo.mtp = m.config.n_mtp_layers > 0 && train;
  fo.indexer = indexer_dense ? IndexerPhase::kDense : IndexerPhase::kSparse;
  fo.indexer_loss = train;
  Losses l;
  l.fr = forward(m, inp, fo);
  if (mask.defined())
    l.ce = masked_cross_entropy(l.fr.logits, win.narrow(1, 1, S), mask.narrow(1, 1, S));
  else
    l.ce = at::cross_entropy_loss(l.fr.logits.reshape({-1, V}), win.narrow(1, 1, S).reshape({-1}));
  l.total = l.ce;
  if (l.fr.mtp_logits.defined()) {
    if (mask.defined())
      l.mtp = masked_cross_entropy(l.fr.mtp_logits, win.narrow(1, 2, S - 1), mask.narrow(1, 2, S - 1));
    else
      l.mtp = at::cross_entropy_loss(l.fr.mtp_logits.reshape({-1, V}), win.narrow(1, 2, S - 1).reshape({-1}));
    l.total = l.total + r.mtp_weight * l.mtp;
  }
  if (train) l.total = l.total + r.balance_weight * l.fr.balance_loss + r.indexer_weight * l.fr.indexer_kl;
  return l;
}

// [n, S+1] token rows filled by fill(i, tokens, loss); mask set (float 0/1) for SFT runs.
template <typename Fill>
Tensor make_rows(const RunConfig& r, const TokenData& d, int64_t n, Fill fill, Tensor& mask) {
  const int64_t S1 = r.seq_len + 1;
  Tensor win = torch::empty({n, S1}, torch::kInt64);
  std::vector<uint8_t> loss(static_cast<size_t>(S1), 1);
  if (r.sft) mask = torch::empty({n, S1}, torch::kFloat32);
  for (int64_t i = 0; i < n; ++i) {
    fill(i, win[i].data_ptr<int64_t>(), loss.data());
    if (r.sft)
      for (int64_t t = 0; t < S1; ++t) mask[i].data_ptr<float>()[t] = loss[static_cast<size_t>(t)] ? 1.0f : 0.0f;
  }
  (void)d;
  return win;
}

double eval_loss(const RunConfig& r, const TrainModel& m, const TokenData& d) {
  torch::NoGradGuard ng;
  double sum = 0;
  for (int64_t b = 0; b < r.eval_batches; ++b) {
    Tensor mask;
    Tensor win = make_rows(r, d, r.batch, [&](int64_t i, int64_t* tok, uint8_t* loss) {
      if (r.sft)
        val_example_row(d, b * r.batch + i, r.seq_len + 1, tok, loss);
      else
        val_window(d, b * r.batch + i, r.seq_len + 1, tok);
    }, mask);
    sum += compute_loss(r, m, win, mask, false, false).ce.item<double>();
  }
  return sum / static_cast<double>(r.eval_batches);
}

}  // namespace

double update_routing_bias(TrainModel& m, const ForwardResult& r, double rate) {
  const ModelConfig& c = m.config;
  double lmm = 0;
  for (size_t i = 0; i < r.routed_layers.size(); ++i) {
    const int64_t layer = r.routed_layers[i];
    const std::string pre =
        layer < c.n_layers ? "layers." + std::to_string(layer) : "mtp." + std::to_string(layer - c.n_layers);
    const Tensor& load = r.expert_load[i];
    const double mean = load.mean().item<double>();
    lmm += load.max().item<double>() / std::max(mean, 1e-12);
    torch::NoGradGuard ng;
    Tensor& bias = m.buffers.at(pre + ".ffn.gate.bias");
    bias.add_(torch::sign(mean - load).to(bias.scalar_type()), rate);
  }
  return r.routed_layers.empty() ? 0.0 : lmm / static_cast<double>(r.routed_layers.size());
}

void save_model_checkpoint(const std::string& path, const TrainModel& m, int64_t step) {
  std::vector<TensorData> out = model_tensors(m);
  CheckpointMeta meta;
  meta.step = step;
  meta.model_config = config_to_hf_json(m.config);
  meta.run = "{}";
  append_meta(out, meta);
  write_safetensors(path, out);
}

TrainModel load_model_checkpoint(const std::string& path) {
  TensorStore st = TensorStore::open_file(path);
  const CheckpointMeta meta = read_meta(st, path);
  TrainModel m = init_model(parse_config(meta.model_config, path + ": meta.model_config"), 0);
  for (const std::string& n : m.names) copy_into(st.get("param." + n), m.params.at(n), path);
  for (auto& [n, b] : m.buffers) copy_into(st.get("buffer." + n), b, path);
  return m;
}

void run_training(const RunConfig& r, const RunOptions& o) {
  at::set_num_threads(r.threads > 0 ? r.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  std::unique_ptr<Dist> dist = dist_from_env();
  const int rank = dist ? dist->rank : 0, world = dist ? dist->world : 1;
  if (r.batch % world != 0)
    throw Error(r.source + ": batch " + std::to_string(r.batch) + " is not a multiple of the " + std::to_string(world) + " processes");
  const int64_t local_batch = r.batch / world, row0 = rank * local_batch;
  const bool writer = rank == 0;  // checkpoints, log and plot come from rank 0
  const TokenData data = open_token_data(r.data, r.model.vocab_size);
  if (r.sft && !data.masked)
    throw Error(r.source + ": objective \"sft\" needs example data with masks (manifest version 2: `dsv4 train data sft`); " +
                r.data + " is version 1");
  if (r.eval_every > 0 && data.val.empty()) throw Error(r.data + ": eval_every is set but the data has no held-out split");
  if (writer) fs::create_directories(r.out);
  const std::string ckpt = (fs::path(r.out) / "checkpoint.safetensors").string();
  const std::string log_path = (fs::path(r.out) / "log.jsonl").string();
  TrainModel m = r.init_from.empty() ? init_model(r.model, r.seed) : load_official(r.init_from);
  if (!r.init_from.empty() && config_to_hf_json(m.config) != config_to_hf_json(r.model))
    throw Error(r.source + ": init_from " + r.init_from + " has another model config than the run's model");
  OptimConfig oc;
  oc.weight_decay = r.weight_decay;
  oc.use_muon = r.muon;
  oc.ns_bf16 = r.muon_ns_bf16;
  Optimizer opt(m, oc);
  int64_t step = 0;
  std::vector<std::string> log_lines;
  if (o.resume) {
    if (!file_exists(ckpt)) throw Error("resume: no checkpoint " + ckpt);
    step = load_checkpoint(ckpt, r, m, opt);
    // Keep the log lines of the steps the checkpoint holds.
    std::ifstream in(log_path);
    for (std::string line; std::getline(in, line);) {
      try {
        if (nlohmann::json::parse(line).value("step", int64_t{0}) <= step) log_lines.push_back(line);
      } catch (const nlohmann::json::exception&) {
      }
    }
  }
  std::vector<std::pair<int64_t, double>> curve, val_curve;
  for (const std::string& line : log_lines) {
    auto j = nlohmann::json::parse(line);
    curve.emplace_back(j["step"].get<int64_t>(), j["loss"].get<double>());
    if (j.contains("val_loss")) val_curve.emplace_back(j["step"].get<int64_t>(), j["val_loss"].get<double>());
  }
  auto write_log = [&] {
    if (!writer) return;
    std::string s;
    for (const std::string& l : log_lines) s += l + "\n";
    write_file_atomic(log_path, s);
    write_file_atomic((fs::path(r.out) / "loss.svg").string(), loss_curve_svg(curve, val_curve));
  };
  const int64_t S1 = r.seq_len + 1;
  auto t_last = std::chrono::steady_clock::now();
  int64_t tokens_since = 0;
  const int64_t last = o.stop_after >= 0 ? std::min(o.stop_after, r.steps) : r.steps;
  while (step < last) {
    const int64_t s = step;
    Tensor mask;
    Tensor win = make_rows(r, data, local_batch, [&](int64_t i, int64_t* tok, uint8_t* loss) {
      if (r.sft)
        train_example_row(data, r.seed, s, row0 + i, S1, tok, loss);
      else
        train_window(data, r.seed, s, row0 + i, S1, tok);
    }, mask);
    const double lr = lr_at(r, s);
    Losses l = compute_loss(r, m, win, mask, s < r.indexer_warmup, true);
    // Scalars of the step, averaged over the ranks (each holds an equal share of the batch).
    Tensor scal = torch::stack({l.total.detach(), l.ce.detach(), l.mtp.defined() ? l.mtp.detach() : torch::zeros_like(l.ce),
                                l.fr.balance_loss.detach().to(l.ce.scalar_type()), l.fr.indexer_kl.detach().to(l.ce.scalar_type())})
                      .to(torch::kFloat64);
    if (dist) {
      std::vector<Tensor> v{scal.to(torch::kFloat32).contiguous()};
      dist->allreduce_sum(v);
      scal = v[0].to(torch::kFloat64) / static_cast<double>(world);
      std::vector<Tensor> loads;
      for (Tensor& ld : l.fr.expert_load) loads.push_back(ld.to(torch::kFloat32).contiguous());
      dist->allreduce_sum(loads);
      l.fr.expert_load = loads;
    }
    const double loss = scal[0].item<double>();
    if (!std::isfinite(loss))
      throw Error("non-finite loss at step " + std::to_string(s + 1) + " (" + std::to_string(loss) + "); stopped" +
                  (file_exists(ckpt) ? "; the last good checkpoint is " + ckpt : "; no checkpoint was written"));
    for (auto& [n, p] : m.params)
      if (p.grad().defined()) p.mutable_grad().zero_();
    l.total.backward();
    if (dist) {
      std::vector<Tensor> ps;
      for (const std::string& n : m.names) ps.push_back(m.params.at(n));
      dist->average_gradients(ps);
    }
    // Global gradient norm, clipping.
    double sq = 0;
    for (const std::string& n : m.names) {
      const Tensor& g = m.params.at(n).grad();
      if (g.defined()) sq += g.pow(2).sum().item<double>();
    }
    const double gnorm = std::sqrt(sq);
    if (!std::isfinite(gnorm))
      throw Error("non-finite gradient norm at step " + std::to_string(s + 1) + "; stopped" +
                  (file_exists(ckpt) ? "; the last good checkpoint is " + ckpt : "; no checkpoint was written"));
    if (r.grad_clip > 0 && gnorm > r.grad_clip) {
      torch::NoGradGuard ng;
      for (auto& [n, p] : m.params)
        if (p.grad().defined()) p.mutable_grad().mul_(r.grad_clip / gnorm);
    }
    opt.step(lr);
    const double lmm = update_routing_bias(m, l.fr, r.bias_update_rate);
    step = s + 1;
    tokens_since += r.batch * r.seq_len;
    StepLog sl;
    sl.step = step;
    sl.loss = loss;
    sl.ce = scal[1].item<double>();
    sl.mtp = scal[2].item<double>();
    sl.balance = scal[3].item<double>();
    sl.indexer_kl = scal[4].item<double>();
    sl.lr = lr;
    sl.grad_norm = gnorm;
    sl.load_max_over_mean = lmm;
    if (r.eval_every > 0 && (step % r.eval_every == 0 || step == r.steps)) sl.val_loss = eval_loss(r, m, data);
    const auto now = std::chrono::steady_clock::now();
    const double dt = std::chrono::duration<double>(now - t_last).count();
    sl.tokens_per_s = dt > 0 ? static_cast<double>(tokens_since) / dt : 0.0;
    t_last = now;
    tokens_since = 0;
    nlohmann::json j = {{"step", step},       {"loss", sl.loss},   {"ce", sl.ce},
                        {"mtp", sl.mtp},      {"balance", sl.balance}, {"indexer_kl", sl.indexer_kl},
                        {"lr", sl.lr},        {"grad_norm", sl.grad_norm}, {"tokens_per_s", sl.tokens_per_s},
                        {"load_max_over_mean", sl.load_max_over_mean}};
    if (sl.val_loss >= 0) j["val_loss"] = sl.val_loss;
    log_lines.push_back(j.dump());
    curve.emplace_back(step, sl.loss);
    if (sl.val_loss >= 0) val_curve.emplace_back(step, sl.val_loss);
    if (writer && !o.quiet && (step % r.log_every == 0 || step == r.steps)) {
      std::fprintf(stderr, "step %lld/%lld  loss %.4f (ce %.4f mtp %.4f)  lr %.3g  |g| %.3g  %.0f tok/s  load max/mean %.2f",
                   static_cast<long long>(step), static_cast<long long>(r.steps), sl.loss, sl.ce, sl.mtp, sl.lr,
                   sl.grad_norm, sl.tokens_per_s, sl.load_max_over_mean);
      if (sl.val_loss >= 0) std::fprintf(stderr, "  val %.4f", sl.val_loss);
      std::fprintf(stderr, "\n");
    }
    if (o.on_step) o.on_step(sl);
    if (writer && ((r.checkpoint_every > 0 && step % r.checkpoint_every == 0) || step == last)) {
      save_checkpoint(ckpt, r, m, opt, step);
      write_log();
    }
  }
  write_log();
}

}  // namespace dsv4::train
