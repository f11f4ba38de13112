// `dsv4 check --model DIR`: loads config.json and every safetensors header, validates the
// whole tensor layout the config implies, and prints a one-line summary.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "frontends/cli/commands.h"
#include "model/weights.h"

namespace dsv4::cli {

int cmd_check(int argc, char** argv) {
  CLI::App app{"Validate a model directory (config.json + safetensors)", "dsv4 check"};
  std::string dir;
  app.add_option("-m,--model", dir, "model directory or GGUF file")->required();
  CLI11_PARSE(app, argc, argv);
  auto w = load_model(dir);
  const ModelConfig& c = w->config;
  size_t bytes = 0;
  for (const auto& [name, t] : w->store->tensors()) bytes += t.nbytes;
  std::printf("ok: %s: %zu tensors, %zu bytes; dim %lld, %lld layers (+%lld MTP), %lld experts (top-%lld), vocab %lld\n", dir.c_str(),
              w->store->tensors().size(), bytes, (long long)c.dim, (long long)c.n_layers, (long long)c.n_mtp_layers,
              (long long)c.n_routed_experts, (long long)c.n_activated_experts, (long long)c.vocab_size);
  return 0;
}

}  // namespace dsv4::cli
