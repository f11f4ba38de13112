// `dsv4 kv (--model DIR | --preset NAME) --context N [--numerics reference|precise|int8] [--json]`:
// the bytes one sequence's cache takes at N tokens, by component, as the engine allocates them
// (kv_bytes_at: the state's own formats, ring sizes and chunk policy), next to DeepSeek-V3.2's
// cache at the same context (spec 4.2-4.4).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "base/error.h"
#include "frontends/cli/commands.h"
#include "model/config.h"
#include "model/gguf_model.h"
#include "model/init.h"
#include "model/state.h"

namespace dsv4::cli {

namespace {

int64_t parse_count(const std::string& s) {
  size_t pos = 0;
  long long v = 0;
  try {
    v = std::stoll(s, &pos);
  } catch (const std::exception&) {
    throw Error("--context: not a number: '" + s + "'");
  }
  const std::string suf = s.substr(pos);
  int64_t mul = 1;
  if (suf.empty()) mul = 1;
  else if (suf == "K" || suf == "k") mul = int64_t{1} << 10;
  else if (suf == "M" || suf == "m") mul = int64_t{1} << 20;
  else throw Error("--context: bad suffix in '" + s + "' (use K or M)");
  if (v < 0) throw Error("--context must be >= 0");
  return static_cast<int64_t>(v) * mul;
}

}  // namespace

ModelConfig config_for_preset_or_dir(const std::string& preset, const std::string& dir) {
  if (!dir.empty()) return is_gguf_path(dir) ? gguf_model_config(GgufFile::open(dir)) : load_config(dir);
  if (preset == "flash" || preset == "pro") return official_config(preset);
  return init_preset_config(preset);
}

int cmd_kv(int argc, char** argv) {
  CLI::App app{"KV cache bytes of one sequence at a context length (engine allocation sizes) vs DeepSeek-V3.2",
               "dsv4 kv"};
  std::string model, preset, context_s, numerics = "reference";
  bool json_out = false;
  auto* o_model = app.add_option("-m,--model", model, "model directory or GGUF file (reads the config only)");
  auto* o_preset = app.add_option("--preset", preset, "flash | pro (released configs), or a dsv4 init preset");
  o_model->excludes(o_preset);
  app.add_option("--context", context_s, "context length in tokens (e.g. 1048576 or 1M)")->required();
  app.add_option("--numerics", numerics, "reference (compact FP8/FP4 cache) | precise or int8 (FP32 cache)");
  app.add_flag("--json", json_out, "print one JSON object");
  CLI11_PARSE(app, argc, argv);
  if (model.empty() && preset.empty()) throw Error("one of --model or --preset is required");
  if (numerics != "reference" && numerics != "precise" && numerics != "int8") throw Error("--numerics: reference, precise or int8");
  const Numerics nm = numerics_from_name(numerics);
  const ModelConfig c = config_for_preset_or_dir(preset, model);
  const int64_t N = parse_count(context_s);
  const KvBytes b = kv_bytes_at(c, nm, N);
  const int64_t total = b.total();
  const int64_t v32 = v32_kv_bytes(N);
  const double per_tok = N > 0 ? static_cast<double>(total) / static_cast<double>(N) : 0.0;
  const double ratio = total > 0 ? static_cast<double>(v32) / static_cast<double>(total) : 0.0;
  // The spec 4.3 accounting leaves out the O(1) compressor state.
  const int64_t cache = total - b.compressor_state;
  const double ratio_cache = cache > 0 ? static_cast<double>(v32) / static_cast<double>(cache) : 0.0;
  if (json_out) {
    nlohmann::json j;
    j["model"] = model.empty() ? preset : model;
    j["numerics"] = numerics;
    j["context"] = N;
    j["total_bytes"] = total;
    j["bytes_per_token"] = per_tok;
    j["by_type"] = {{"window", b.window},
                    {"csa_entries", b.csa_entries},
                    {"indexer_keys", b.indexer_keys},
                    {"hca_entries", b.hca_entries},
                    {"compressor_state", b.compressor_state}};
    j["cache_bytes_excl_compressor_state"] = cache;
    j["v32_total_bytes"] = v32;
    j["v32_bytes_per_token"] = kV32Layers * (kV32MlaEntryBytes + kV32IndexerKeyBytes);
    j["ratio_vs_v32"] = ratio;
    j["ratio_vs_v32_excl_compressor_state"] = ratio_cache;
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  auto gb = [](int64_t x) { return static_cast<double>(x) / 1e9; };
  auto gib = [](int64_t x) { return static_cast<double>(x) / static_cast<double>(int64_t{1} << 30); };
  std::printf("KV cache of one sequence at %lld tokens (%s numerics, engine allocation sizes)\n",
              static_cast<long long>(N), numerics.c_str());
  auto row = [&](const char* name, int64_t x) {
    std::printf("  %-18s %16lld B  %10.4f GB  %8.1f B/token\n", name, static_cast<long long>(x), gb(x),
                N > 0 ? static_cast<double>(x) / static_cast<double>(N) : 0.0);
  };
  row("window", b.window);
  row("CSA entries", b.csa_entries);
  row("indexer keys", b.indexer_keys);
  row("HCA entries", b.hca_entries);
  row("compressor state", b.compressor_state);
  row("total", total);
  std::printf("  total %.4f GB (%.4f GiB); without the O(1) compressor state %.4f GB\n", gb(total), gib(total),
              gb(cache));
  std::printf("DeepSeek-V3.2 at %lld tokens: %lld B = %.2f GB (%lld B/token)\n", static_cast<long long>(N),
              static_cast<long long>(v32), gb(v32),
              static_cast<long long>(kV32Layers * (kV32MlaEntryBytes + kV32IndexerKeyBytes)));
  std::printf("ratio V3.2 / V4: %.3fx (%.3fx without the compressor state)\n", ratio, ratio_cache);
  return 0;
}

}  // namespace dsv4::cli
