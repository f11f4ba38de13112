// train_bench: training throughput of `dsv4 train` and its model FLOP utilisation (MFU)
// against the machine's matmul peak measured in the same run (torch FP32 and BF16 GEMMs).
//   train_bench [--bf16] [--threads N] [--steps K] [--dim D] [--layers L] [--vocab V] [--seq S] [--batch B]
// --bf16: projections and Muon's Newton-Schulz iterations in BF16.
// MFU = tokens/s * 6 * active parameters per token / FP32 GEMM peak (attention FLOPs not
// counted). A benchmark: nothing here passes or fails.
#include <ATen/Parallel.h>
#include <torch/types.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <unistd.h>
#include <vector>

#include "model/init.h"
#include "train/run.h"
#include "train/token_data.h"

using namespace dsv4;

namespace {

double gemm_gflops(torch::Dtype dt, int64_t n, int reps) {
  torch::Tensor a = torch::randn({n, n}).to(dt), b = torch::randn({n, n}).to(dt);
  torch::matmul(a, b);  // warm-up
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) torch::matmul(a, b);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return 2.0 * n * n * n * reps / s / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, steps = 6;
  bool bf16 = false;
  int64_t dim = 256, layers = 6, vocab = 8192, seq = 512, batch = 4;
  for (int i = 1; i < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--bf16") {
      bf16 = true;
      --i;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "option %s needs a value\n", a.c_str());
      return 2;
    }
    const long long v = std::atoll(argv[i + 1]);
    if (a == "--threads") threads = static_cast<int>(v);
    else if (a == "--steps") steps = static_cast<int>(v);
    else if (a == "--dim") dim = v;
    else if (a == "--layers") layers = v;
    else if (a == "--vocab") vocab = v;
    else if (a == "--seq") seq = v;
    else if (a == "--batch") batch = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  at::set_num_threads(threads);
  const double fp32 = gemm_gflops(torch::kFloat32, 1024, 8);
  const double bf16_peak = gemm_gflops(torch::kBFloat16, 1024, 8);
  ModelConfig c = init_preset_config("tiny");
  c.vocab_size = vocab;
  c.dim = dim;
  c.n_layers = layers;
  c.compress_ratios.clear();
  for (int64_t l = 0; l < layers; ++l) c.compress_ratios.push_back(l % 3 == 0 ? 0 : (l % 3 == 1 ? 4 : 16));
  c.compress_ratios.push_back(0);  // MTP
  c.n_heads = 4;
  c.head_dim = 128;
  c.rope_dim = 64;
  c.q_lora_rank = dim / 2;
  c.o_lora_rank = dim / 4;
  c.window = 128;
  c.n_routed_experts = 8;
  c.n_activated_experts = 2;
  c.moe_inter_dim = dim;
  c.n_hash_layers = 1;
  const ModelSizes sz = model_sizes(c);
  const double flops_per_token = 6.0 * static_cast<double>(sz.active_params);
  const std::string dir = (std::filesystem::temp_directory_path() / ("dsv4_train_bench_" + std::to_string(::getpid()))).string();
  std::vector<std::vector<int64_t>> docs(64);
  uint64_t x = 1;
  for (auto& d : docs)
    for (int i = 0; i < 1000; ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      d.push_back(2 + static_cast<int64_t>((x >> 33) % static_cast<uint64_t>(vocab - 2)));
    }
  train::write_token_data(dir + "/data", docs, vocab, 1, 0.0);
  nlohmann::json j = {{"model", nlohmann::json::parse(config_to_hf_json(c))}, {"data", dir + "/data"}, {"out", dir + "/out"},
                      {"seq_len", seq}, {"batch", batch}, {"steps", steps}, {"threads", threads}, {"warmup", 1},
                      {"compute", bf16 ? "bf16" : "fp32"}, {"muon_ns", bf16 ? "bf16" : "fp32"}};
  train::RunConfig r = train::parse_run_config(j.dump(), dir + "/run.json");
  std::vector<double> tps;
  train::RunOptions o;
  o.quiet = true;
  o.on_step = [&](const train::StepLog& s) { tps.push_back(s.tokens_per_s); };
  train::run_training(r, o);
  std::filesystem::remove_all(dir);
  double mean = 0;
  int n = 0;
  for (size_t i = 1; i < tps.size(); ++i, ++n) mean += tps[i];  // the first step pays the warm-up
  mean = n ? mean / n : (tps.empty() ? 0 : tps[0]);
  std::printf("compute %s | threads %d | GEMM peak: FP32 %.1f GFLOP/s, BF16 %.1f GFLOP/s\n", bf16 ? "bf16" : "fp32", threads, fp32, bf16_peak);
  std::printf("model: dim %lld, %lld layers + MTP, vocab %lld, %.1fM params (%.1fM active per token); seq %lld x batch %lld\n",
              static_cast<long long>(dim), static_cast<long long>(layers), static_cast<long long>(vocab),
              static_cast<double>(sz.params) / 1e6, static_cast<double>(sz.active_params) / 1e6,
              static_cast<long long>(seq), static_cast<long long>(batch));
  std::printf("training: %.0f tokens/s (mean of steps 2..%d) = %.1f GFLOP/s (6 N per token) = MFU %.2f of the FP32 peak, %.2f of the BF16 peak\n",
              mean, steps, mean * flops_per_token / 1e9, mean * flops_per_token / 1e9 / fp32, mean * flops_per_token / 1e9 / bf16_peak);
  return 0;
}
