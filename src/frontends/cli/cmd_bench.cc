// `dsv4 bench (-m DIR | --preset NAME) [-t N] [--json]`: in one run, the machine's limits
// (STREAM-like read bandwidth, FP32 FMA and BF16 dot peaks: the kernels decode FP8/FP4 weights into FP32
// lanes and multiply-add in FP32) and the model's prefill and decode speed against them, then
// decode speed at long contexts.
//
// Long contexts: prefilling 1M tokens is not feasible here, so the long-context points
// synthesise the cache directly: a short real prefill provides valid rows (window rows,
// compressed entries, indexer keys in the state's storage format); the state at context N
// gets N / ratio entries copied cyclically from those rows, pos = N, and the window ring
// filled the same way. Decode then runs the normal code path at N (same reads and FLOPs as a
// real cache of that size; only the values differ).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backend/machine_probe.h"
#include "backend/thread_pool.h"
#include "base/error.h"
#include "base/file.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "engine/speculative.h"
#include "frontends/cli/commands.h"
#include "frontends/cli/generation_cli.h"
#include "model/config.h"
#include "model/forward.h"
#include "model/init.h"
#include "model/state.h"
#include "model/weights.h"

namespace dsv4::cli {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int64_t rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6) * 1024;
  return 0;
}

int64_t available_memory_bytes() {
  std::ifstream f("/proc/meminfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("MemAvailable:", 0) == 0) return std::atoll(line.c_str() + 13) * 1024;
  return int64_t{8} << 30;
}

struct Progress {
  bool on = isatty(2) != 0;
  void operator()(const std::string& s) const {
    if (on) std::fprintf(stderr, "\r\033[K%s", s.c_str());
  }
  void done() const {
    if (on) std::fprintf(stderr, "\r\033[K");
  }
};

// The random model of a `dsv4 init` preset, written once into the cache directory.
std::string preset_model_dir(const std::string& name, const std::string& cache_dir, const Progress& progress) {
  const ModelConfig c = init_preset_config(name);
  std::string base = cache_dir;
  if (base.empty()) {
    const char* home = std::getenv("HOME");
    base = std::string(home ? home : "/tmp") + "/.cache/dsv4/models";
  }
  const fs::path dir = fs::path(base) / ("bench-" + name);
  const fs::path done = dir / ".complete";
  if (fs::exists(done)) return dir.string();
  progress("writing the random " + name + " model into " + dir.string() + " (once)");
  fs::create_directories(dir);
  InitOptions opt;
  opt.seed = 0;
  opt.force = true;
  opt.threads = std::max(1, physical_core_count());
  write_random_model(c, dir.string(), opt);
  std::ofstream(done.string()) << "ok\n";
  return dir.string();
}

// Bytes of the cache one decode step at context `ctx` reads (window rows, the attended
// compressed entries, every indexer key of the CSA layers).
int64_t kv_read_bytes(const ModelConfig& c, Numerics nm, int64_t ctx) {
  const int64_t main_row = kv_entry_bytes(main_kv_format(c, nm), c.head_dim, c.rope_dim);
  const int64_t idx_row = kv_entry_bytes(indexer_kv_format(c, nm), c.index_head_dim, 0);
  int64_t b = 0;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    b += std::min(ctx, c.window) * main_row;
    const int64_t r = c.compress_ratio(l);
    if (r == 0) continue;
    const int64_t T = ctx / r;
    if (c.attention_kind(l) == AttentionKind::kCsa) b += std::min(T, c.index_topk) * main_row + T * idx_row;
    else b += T * main_row;
  }
  return b;
}

// Attention + indexer FLOPs of one query at position p (scores and P.V over the attended rows).
double attention_flops(const ModelConfig& c, int64_t p) {
  double f = 0;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    int64_t rows = std::min(p + 1, c.window);
    const int64_t r = c.compress_ratio(l);
    if (r > 0) {
      const int64_t T = (p + 1) / r;
      if (c.attention_kind(l) == AttentionKind::kCsa) {
        rows += std::min(T, c.index_topk);
        f += 2.0 * static_cast<double>(c.index_n_heads * c.index_head_dim * T);
      } else {
        rows += T;
      }
    }
    f += 4.0 * static_cast<double>(c.n_heads * c.head_dim * rows);
  }
  return f;
}

// Fills `st` (fresh) as if it had processed N tokens, from the rows of `src` (a real prefill).
void synthesise_state(const ModelConfig& c, const SequenceState& src, SequenceState& st, int64_t N) {
  for (size_t l = 0; l < st.layers.size(); ++l) {
    LayerState& d = st.layers[l];
    const LayerState& s = src.layers[l];
    for (int64_t p = std::max<int64_t>(0, N - d.window_cap); p < N; ++p)
      std::memcpy(d.window_row(p), s.window_row(p % std::min(src.pos, s.window_cap)), static_cast<size_t>(d.window_row_bytes));
    auto fill = [&](CompressorState& dc, const CompressorState& sc) {
      const int64_t n = N / dc.ratio;
      dc.reserve_entries(n);
      const size_t rb = static_cast<size_t>(dc.entries.row_bytes);
      for (int64_t i = 0; i < n; ++i) {
        // All-zero bytes are a valid row (zero codes, zero BF16) when the short prefill
        // produced no entry of this compressor.
        if (sc.n_entries > 0) std::memcpy(dc.entries.row(i), sc.entries.row(i % sc.n_entries), rb);
        else std::memset(dc.entries.row(i), 0, rb);
      }
      dc.n_entries = n;
    };
    if (d.has_compressor) fill(d.compressor, s.compressor);
    if (d.has_indexer) fill(d.indexer, s.indexer);
  }
  st.pos = N;
}

}  // namespace

int cmd_bench(int argc, char** argv) {
  CLI::App app{"Measure the machine (read bandwidth, FP32 FMA peak) and the model's prefill and decode speed",
               "dsv4 bench"};
  std::string model, preset, cache_dir, numerics_name = "reference";
  bool json_out = false, no_long = false;
  int threads = 0;
  int64_t prefill_n = 256, decode_n = 16, max_context = 0, long_steps = 2;
  double long_budget = 60.0, bw_mib = 1024;
  std::string spec = "auto";
  int draft = 2;
  auto* o_model = app.add_option("-m,--model", model, "model directory or GGUF file");
  auto* o_preset = app.add_option("--preset", preset, "dsv4 init preset (tiny, flash-scaled): written once into the cache dir");
  o_model->excludes(o_preset);
  app.add_option("--cache-dir", cache_dir, "where preset models live (default ~/.cache/dsv4/models)");
  app.add_option("--numerics", numerics_name, "reference (default, the official numerics), precise (FP32) or int8 (precise, GGUF Q8_0 / MXFP4 products on int8 activations)")
      ->check(CLI::IsMember({"reference", "precise", "int8"}));
  app.add_option("-t,--threads", threads, "threads (default: DSV4_THREADS or the physical cores)");
  app.add_flag("--json", json_out, "print one JSON object");
  bool no_mmap = false;
  app.add_flag("--no-mmap", no_mmap, kNoMmapHelp);
  app.add_option("--prefill", prefill_n, "prefill tokens")->check(CLI::Range(int64_t{2}, int64_t{1} << 20));
  app.add_option("--decode", decode_n, "decode steps")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app.add_option("--max-context", max_context, "largest long-context point (default: what fits in memory)");
  app.add_option("--long-steps", long_steps, "decode steps per long-context point")->check(CLI::Range(1, 1000));
  app.add_option("--long-budget", long_budget, "stop the long-context series after a point slower than this (s/step)");
  app.add_flag("--no-long", no_long, "skip the long-context series");
  add_spec_options(app, spec, draft);
  app.add_option("--bandwidth-mib", bw_mib, "buffer of the bandwidth probe (MiB; far above the LLC)");
  CLI11_PARSE(app, argc, argv);
  if (model.empty() && preset.empty()) throw Error("one of --model or --preset is required");
  const Progress progress;
  if (threads > 0) set_default_thread_count(threads);
  ThreadPool& pool = default_thread_pool();
  threads = pool.size();

  progress("measuring read bandwidth");
  const double bw = measure_read_bandwidth(pool, static_cast<int64_t>(bw_mib * (1 << 20)), 3);
  progress("measuring the FP32 FMA peak");
  const double peak = measure_fp32_fma_peak(pool, 3);
  progress("measuring the BF16 dot peak");
  const double peak_bf16 = measure_bf16_dot_peak(pool, 3);

  const std::string dir = model.empty() ? preset_model_dir(preset, cache_dir, progress) : model;
  progress("loading " + dir);
  auto w = load_model(dir, no_mmap ? FileMemory::kHugePageCopy : FileMemory::kMapped);
  // Steady-state decode: page faults of first touches are not part of a step's cost.
  progress("paging the weights in");
  touch_weight_pages(*w);
  const ModelConfig& c = w->config;
  const Numerics nm = numerics_from_name(numerics_name);
  const ModelSizes sizes = model_sizes(c);
  // Bytes as loaded (a GGUF's own types, not the official layout's): all tensors, and those a
  // decoded token reads.
  const int64_t active_bytes = active_weight_bytes(*w);
  int64_t model_bytes = 0;
  for (const auto& [name, t] : w->store->tensors()) model_bytes += static_cast<int64_t>(t.nbytes);

  std::vector<int64_t> tokens(static_cast<size_t>(prefill_n + decode_n));
  uint64_t s = 0x9E3779B97F4A7C15ull;
  const int64_t vmax = std::min<int64_t>(c.vocab_size, 100000);
  for (auto& t : tokens) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    t = 2 + static_cast<int64_t>((s >> 33) % static_cast<uint64_t>(vmax - 2));
  }
  std::vector<float> logits(static_cast<size_t>(c.vocab_size));
  ForwardOutput fo;
  fo.logits = logits.data();

  // Prefill.
  SequenceState st(c, nm);
  progress("prefill of " + std::to_string(prefill_n) + " tokens");
  auto t0 = Clock::now();
  forward(*w, st, tokens.data(), prefill_n, fo);
  const double t_prefill = seconds_since(t0);
  const double head_params = static_cast<double>(c.vocab_size * c.dim);
  const double linear_params = static_cast<double>(sizes.active_params) - head_params - static_cast<double>(c.dim);
  double prefill_flops = 2.0 * head_params;
  for (int64_t p = 0; p < prefill_n; ++p) prefill_flops += 2.0 * linear_params + attention_flops(c, p);
  // Decode.
  double t_decode = 0;
  for (int64_t i = 0; i < decode_n; ++i) {
    progress("decode step " + std::to_string(i + 1) + "/" + std::to_string(decode_n));
    t0 = Clock::now();
    forward(*w, st, tokens.data() + prefill_n + i, 1, fo);
    t_decode += seconds_since(t0);
  }
  const double decode_tok_s = static_cast<double>(decode_n) / t_decode;
  const int64_t mid_ctx = prefill_n + decode_n / 2;
  const int64_t decode_bytes = active_bytes + kv_read_bytes(c, nm, mid_ctx);
  const int64_t kv_bytes = st.kv_bytes().total();
  const int64_t rss = rss_bytes();

  // Speculative decoding (greedy, the model's own continuation of the prompt): decode_n tokens
  // through a plain session and through the speculative loop, then the cost of its parts
  // (one MTP draft, one verify pass of draft + 1 tokens) against a plain decode step.
  nlohmann::json mtp = nullptr;
  const int n_draft = spec_draft(spec, draft, *w);
  if (n_draft > 0) {
    const std::span<const int64_t> prompt(tokens.data(), static_cast<size_t>(prefill_n));
    SessionOptions so;
    so.numerics = nm;
    so.prefill_chunk = prefill_n;
    SamplingParams greedy;
    greedy.temperature = 0.0f;
    double t_plain = 0;
    {
      progress("greedy decode without speculation");
      Session plain(w, so);
      std::span<const float> lg = plain.append(prompt);
      Sampler sampler(c.vocab_size, greedy);
      t0 = Clock::now();
      for (int64_t i = 0; i < decode_n; ++i) lg = plain.step(sampler.sample(lg, nullptr).token);
      t_plain = seconds_since(t0);
    }
    so.mtp = true;
    Session ses(w, so);
    progress("greedy decode with MTP speculation");
    std::span<const float> lg = ses.append(prompt);
    Sampler sampler(c.vocab_size, greedy);
    SpeculativeDecoder dec(ses, sampler, nullptr, n_draft);
    int64_t committed = 0;
    SpecHooks hooks;
    hooks.commit = [&](const SampleResult&) { return ++committed < decode_n; };
    t0 = Clock::now();
    int32_t pending = sampler.sample(lg, nullptr).token;
    bool running = decode_n > 1;
    committed = 1;
    while (running) {
      const auto r = dec.step(pending, decode_n - committed, hooks);
      running = r.running;
      pending = r.pending;
    }
    const double t_spec = seconds_since(t0);
    // Parts: drafts and a verify pass keeping one token (so the context advances by one).
    progress("timing drafts and verify passes");
    const int64_t parts = std::min<int64_t>(decode_n, 8);
    double t_draft = 0, t_verify = 0;
    std::vector<int64_t> v(static_cast<size_t>(n_draft + 1));
    for (int64_t i = 0; i < parts; ++i) {
      v[0] = sampler.sample(ses.last_logits(), nullptr).token;
      t0 = Clock::now();
      std::span<const float> q = ses.draft_first(v[0]);
      for (int k = 0; k < n_draft; ++k) {
        if (k > 0) q = ses.draft_next(v[static_cast<size_t>(k)]);
        v[static_cast<size_t>(k + 1)] = q.empty() ? v[0] : sampler.sample(q, nullptr).token;
      }
      t_draft += seconds_since(t0);
      t0 = Clock::now();
      ses.verify(v);
      ses.commit_verified(1);
      t_verify += seconds_since(t0);
    }
    const double plain_tok_s = static_cast<double>(decode_n) / t_plain;
    const double spec_tok_s = static_cast<double>(decode_n) / t_spec;
    mtp = {{"draft", n_draft},
           {"acceptance", dec.stats().acceptance()},
           {"drafted", dec.stats().drafted},
           {"accepted", dec.stats().accepted},
           {"baseline_tok_s", plain_tok_s},
           {"decode_tok_s", spec_tok_s},
           {"speedup", spec_tok_s / plain_tok_s},
           {"decode_step_ms", 1e3 * t_plain / static_cast<double>(decode_n)},
           {"draft_ms", 1e3 * t_draft / static_cast<double>(parts * n_draft)},
           {"verify_ms", 1e3 * t_verify / static_cast<double>(parts)}};
  }

  // Long contexts.
  nlohmann::json longs = nlohmann::json::array();
  if (!no_long) {
    int64_t cap = max_context > 0 ? max_context : c.max_position_embeddings;
    const int64_t avail = available_memory_bytes();
    for (int64_t N = 4096; N <= cap; N *= 4) {
      const int64_t need = kv_bytes_at(c, nm, N).total();
      if (need > avail / 2) break;
      progress("long context " + std::to_string(N) + ": building the cache");
      SequenceState lst(c, nm);
      synthesise_state(c, st, lst, N);
      double t = 0;
      for (int64_t i = 0; i < long_steps; ++i) {
        progress("long context " + std::to_string(N) + ": decode step " + std::to_string(i + 1));
        t0 = Clock::now();
        forward(*w, lst, tokens.data() + (i % prefill_n), 1, fo);
        t += seconds_since(t0);
      }
      const double tps = static_cast<double>(long_steps) / t;
      longs.push_back({{"context", N},
                       {"decode_tok_s", tps},
                       {"kv_bytes", lst.kv_bytes().total()},
                       {"decode_bytes_per_token", active_bytes + kv_read_bytes(c, nm, N)},
                       {"decode_weight_bytes_per_token", active_bytes},
                       {"decode_kv_bytes_per_token", kv_read_bytes(c, nm, N)}});
      if (t / static_cast<double>(long_steps) > long_budget) break;
    }
  }
  progress.done();

  const double prefill_gflops = prefill_flops / t_prefill / 1e9;
  nlohmann::json j;
  j["model"] = dir;
  j["threads"] = threads;
  j["numerics"] = numerics_name;
  j["no_mmap"] = no_mmap;  // weights copied into huge-page memory
  j["bandwidth_gbs"] = bw / 1e9;
  // Both yardsticks; the prefill fraction is against the one the kernels use today (FP32 FMA
  // after decoding the weights into FP32 lanes, in both numerics modes).
  j["gemm_peak_gflops"] = {{"fp32", peak / 1e9}, {"bf16", peak_bf16 / 1e9}};
  j["gemm_peak_kind"] = "fp32";
  j["decode_tok_s"] = decode_tok_s;
  j["decode_context"] = mid_ctx;
  j["decode_bytes_per_token"] = decode_bytes;
  j["decode_weight_bytes_per_token"] = active_bytes;
  j["decode_kv_bytes_per_token"] = decode_bytes - active_bytes;
  j["decode_bw_fraction"] = static_cast<double>(decode_bytes) * decode_tok_s / bw;
  if (!mtp.is_null()) {
    j["mtp_acceptance"] = mtp["acceptance"];
    j["mtp_decode_tok_s"] = mtp["decode_tok_s"];
    j["mtp_speedup"] = mtp["speedup"];
    j["mtp"] = mtp;
  }
  j["prefill_tokens"] = prefill_n;
  j["prefill_tok_s"] = static_cast<double>(prefill_n) / t_prefill;
  j["prefill_gflops"] = prefill_gflops;
  j["prefill_peak_fraction"] = prefill_gflops / (peak / 1e9);
  j["long_context"] = longs;
  j["resident_bytes"] = rss;
  j["kv_bytes"] = kv_bytes;
  j["model_bytes"] = model_bytes;
  if (json_out) {
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("machine: %d threads, read bandwidth %.2f GB/s, FP32 FMA peak %.1f GFLOP/s, BF16 dot peak %.1f GFLOP/s\n",
              threads, bw / 1e9, peak / 1e9, peak_bf16 / 1e9);
  std::printf("model: %s (%.2f GB, %.3f GB read per token)\n", dir.c_str(), model_bytes / 1e9, active_bytes / 1e9);
  std::printf("prefill: %lld tokens, %.2f tok/s, %.2f GFLOP/s = %.1f%% of the FMA peak\n",
              static_cast<long long>(prefill_n), static_cast<double>(prefill_n) / t_prefill, prefill_gflops,
              100.0 * prefill_gflops / (peak / 1e9));
  std::printf("decode: %.2f tok/s at context %lld, %.3f GB/token (weights + KV) = %.1f%% of the read bandwidth\n",
              decode_tok_s, static_cast<long long>(mid_ctx), decode_bytes / 1e9,
              100.0 * static_cast<double>(decode_bytes) * decode_tok_s / bw);
  if (!mtp.is_null())
    std::printf("MTP speculation (greedy, draft %d): %.2f tok/s vs %.2f without = %.2fx; acceptance %.1f%% (%lld of %lld drafts); "
                "one draft %.1f ms, one verify pass of %d tokens %.1f ms, one decode step %.1f ms\n",
                n_draft, mtp["decode_tok_s"].get<double>(), mtp["baseline_tok_s"].get<double>(), mtp["speedup"].get<double>(),
                100.0 * mtp["acceptance"].get<double>(), static_cast<long long>(mtp["accepted"].get<int64_t>()),
                static_cast<long long>(mtp["drafted"].get<int64_t>()), mtp["draft_ms"].get<double>(), n_draft + 1,
                mtp["verify_ms"].get<double>(), mtp["decode_step_ms"].get<double>());
  for (const auto& l : longs)
    std::printf("  context %8lld: %.3f tok/s (KV %.3f GB)\n", static_cast<long long>(l["context"].get<int64_t>()),
                l["decode_tok_s"].get<double>(), l["kv_bytes"].get<int64_t>() / 1e9);
  std::printf("resident: %.2f GB (weights touched + KV %.3f GB + workspace)\n", rss / 1e9, kv_bytes / 1e9);
  return 0;
}

}  // namespace dsv4::cli
