// `dsv4 init (--preset NAME | --config FILE) --seed N --out DIR [--force]`: writes a random
// model in the official checkpoint layout (config.json, safetensors shards, index,
// tokenizer.json) that `dsv4 check` and the engine load like a released checkpoint.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "base/error.h"
#include "base/file.h"
#include "frontends/cli/commands.h"
#include "frontends/cli/default_model.h"
#include "model/init.h"

namespace dsv4::cli {

namespace {

// Largest token id of the shipped tokenizer + 1: a smaller vocabulary cannot use it.
constexpr int64_t kTokenizerVocab = 129280;

int64_t parse_bytes(const std::string& s) {
  size_t pos = 0;
  long long v = 0;
  try {
    v = std::stoll(s, &pos);
  } catch (const std::exception&) {
    throw Error("--shard-bytes: not a number: '" + s + "'");
  }
  std::string suf = s.substr(pos);
  int64_t mul = 1;
  if (suf == "" ) mul = 1;
  else if (suf == "K" || suf == "k") mul = int64_t{1} << 10;
  else if (suf == "M" || suf == "m") mul = int64_t{1} << 20;
  else if (suf == "G" || suf == "g") mul = int64_t{1} << 30;
  else throw Error("--shard-bytes: bad suffix in '" + s + "' (use K, M or G)");
  if (v <= 0) throw Error("--shard-bytes must be positive");
  return static_cast<int64_t>(v) * mul;
}

std::string human(int64_t b) {
  char buf[64];
  if (b >= (int64_t{1} << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", b / double(int64_t{1} << 30));
  else std::snprintf(buf, sizeof buf, "%.1f MiB", b / double(1 << 20));
  return buf;
}

}  // namespace

int cmd_init(int argc, char** argv) {
  std::string presets_help = "built-in model:";
  for (const auto& p : init_presets()) presets_help += "\n  " + p.name + ": " + p.description;
  CLI::App app{"Write a random DeepSeek-V4 model in the official checkpoint layout", "dsv4 init"};
  std::string preset, config_file, out;
  uint64_t seed = 0;
  std::string shard_bytes = "2G";
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  bool force = false, no_tokenizer = false, dry_run = false;
  auto* o_preset = app.add_option("--preset", preset, presets_help);
  auto* o_config = app.add_option("--config", config_file, "HF config.json to use instead of a preset");
  o_preset->excludes(o_config);
  app.add_option("--seed", seed, "random seed (same seed, same bytes)");
  app.add_option("-o,--out", out, "output directory (created; must be empty unless --force)");
  app.add_flag("--force", force, "write into a non-empty directory (replaces model files)");
  app.add_option("--shard-bytes", shard_bytes, "start a new safetensors shard before a file exceeds this (e.g. 2G, 500M)");
  app.add_option("--threads", threads, "generator threads (does not change the output)")->check(CLI::Range(1, 256));
  app.add_flag("--no-tokenizer", no_tokenizer, "do not install tokenizer.json");
  app.add_flag("--dry-run", dry_run, "print the sizes of the model and write nothing");
  CLI11_PARSE(app, argc, argv);

  if (preset.empty() && config_file.empty()) throw Error("one of --preset or --config is required");
  ModelConfig c;
  if (!preset.empty()) {
    c = init_preset_config(preset);
  } else {
    if (!file_exists(config_file)) throw Error(config_file + ": no such file");
    c = parse_config(read_file(config_file), config_file);
  }
  const ModelSizes z = model_sizes(c);
  std::printf("model: %lld tensors, %lld params (%.3f B), %lld bytes (%s; MTP %s); per token (main model): %lld params, %lld bytes (%s)\n",
              (long long)z.tensors, (long long)z.params, z.params / 1e9, (long long)z.bytes, human(z.bytes).c_str(),
              human(z.mtp_bytes).c_str(), (long long)z.active_params, (long long)z.active_bytes, human(z.active_bytes).c_str());
  if (dry_run) return 0;
  if (out.empty()) throw Error("--out DIR is required");

  InitOptions opt;
  opt.seed = seed;
  opt.shard_bytes = parse_bytes(shard_bytes);
  opt.threads = threads;
  opt.force = force;
  if (!no_tokenizer) {
    if (c.vocab_size >= kTokenizerVocab) opt.tokenizer_gz = find_tokenizer_asset();
    else std::fprintf(stderr, "dsv4 init: note: vocab_size %lld is smaller than the V4 tokenizer's; not writing tokenizer.json\n", (long long)c.vocab_size);
  }
  InitResult r = write_random_model(c, out, opt);
  std::printf("wrote %s:", out.c_str());
  for (const auto& f : r.files) std::printf(" %s", f.c_str());
  std::printf("\n");
  return 0;
}

}  // namespace dsv4::cli
