// `dsv4 logits`: logits of a token sequence through the faithful forward pass (prefill, or
// prefill then teacher-forced one-token decode steps), written as a safetensors file.
#include <CLI/CLI.hpp>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/file.h"
#include "frontends/cli/commands.h"
#include "model/forward.h"
#include "model/gguf_model.h"
#include "model/mtp.h"
#include "model/safetensors.h"
#include "model/weights.h"

namespace dsv4::cli {

// Token id lists on the command line: "1,2,3" or "@FILE" (a JSON array of integers). Throws
// Error for malformed lists, non-integers, negative ids and empty lists. Also used by
// cmd_block.cc.
std::vector<int64_t> parse_token_ids(const std::string& arg) {
  std::vector<int64_t> ids;
  if (!arg.empty() && arg[0] == '@') {
    const std::string path = arg.substr(1);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_file(path));
    } catch (const nlohmann::json::exception& e) {
      throw Error("--tokens " + path + ": not valid JSON: " + e.what());
    }
    if (!j.is_array()) throw Error("--tokens " + path + ": expected a JSON array of integers");
    for (size_t i = 0; i < j.size(); ++i) {
      const auto& v = j[i];
      if (!v.is_number_integer()) throw Error("--tokens " + path + ": element " + std::to_string(i) + " is not an integer");
      ids.push_back(v.get<int64_t>());
    }
  } else {
    if (arg.find_first_not_of(" \t\n") == std::string::npos) throw Error("--tokens: empty token list");
    size_t i = 0;
    while (i <= arg.size()) {
      size_t j = arg.find(',', i);
      if (j == std::string::npos) j = arg.size();
      std::string item = arg.substr(i, j - i);
      size_t a = 0, b = item.size();
      while (a < b && std::isspace(static_cast<unsigned char>(item[a]))) ++a;
      while (b > a && std::isspace(static_cast<unsigned char>(item[b - 1]))) --b;
      item = item.substr(a, b - a);
      int64_t v = 0;
      auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
      if (item.empty() || ec != std::errc() || ptr != item.data() + item.size())
        throw Error("--tokens: \"" + item + "\" is not an integer token id");
      ids.push_back(v);
      i = j + 1;
      if (j == arg.size()) break;
    }
  }
  if (ids.empty()) throw Error("--tokens: empty token list");
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0) throw Error("--tokens: negative token id " + std::to_string(ids[i]) + " at index " + std::to_string(i));
  return ids;
}


int cmd_logits(int argc, char** argv) {
  CLI::App app{
      "Compute logits of a token sequence.\n"
      "Without --prefill: one prefill of all N tokens; writes F32 `logits` [1, V] (last position),\n"
      "or [N, V] with --all (every position).\n"
      "With --prefill K (1 <= K <= N): prefill K tokens, then decode the remaining tokens one at a\n"
      "time (teacher forcing); writes `logits` [N-K+1, V]: row 0 after the prefill (position K-1),\n"
      "row j after the decode step of position K-1+j.\n"
      "--mtp: also writes `mtp_logits` [N-1, V] from the MTP block: row i combines the final main-model\n"
      "streams at position i with the embedding of token i+1 and predicts token i+2 (the golden data's\n"
      "mtp(h[:, :-1], 0, tokens[:, 1:])). Needs N >= 2.",
      "dsv4 logits"};
  std::string dir, tokens_arg, out_path, numerics_name = "reference";
  int64_t prefill = 0;
  bool all = false, mtp = false;
  std::string mtp_gguf;
  app.add_option("-m,--model", dir, "model directory or GGUF file")->required();
  app.add_option("--mtp-gguf", mtp_gguf, "MTP sidecar GGUF file (with -m FILE.gguf; for --mtp)");
  app.add_option("--tokens", tokens_arg, "token ids: 1,2,3 or @FILE (a JSON array of integers)")->required();
  app.add_option("-o,--out", out_path, "output safetensors file")->required();
  app.add_option("--numerics", numerics_name, "reference (default), precise or int8")
      ->check(CLI::IsMember({"reference", "precise", "int8"}));
  app.add_option("--prefill", prefill, "prefill K tokens, then decode the rest one token at a time");
  app.add_flag("--all", all, "logits of every position (prefill mode)");
  app.add_flag("--mtp", mtp, "also write mtp_logits (see above)");
  CLI11_PARSE(app, argc, argv);

  std::vector<int64_t> tokens = parse_token_ids(tokens_arg);
  auto w = mtp_gguf.empty() ? load_model(dir) : load_gguf_model(dir, mtp_gguf);
  const ModelConfig& c = w->config;
  check_tokens(c, tokens.data(), static_cast<int64_t>(tokens.size()));
  const int64_t N = static_cast<int64_t>(tokens.size()), V = c.vocab_size, hc = c.hc_mult, D = c.dim;
  if (app.count("--prefill") && (prefill < 1 || prefill > N))
    throw Error("--prefill " + std::to_string(prefill) + ": must be in [1, " + std::to_string(N) + "]");
  if (app.count("--prefill") && all) throw Error("--all and --prefill cannot be combined");
  if (mtp && N < 2) throw Error("--mtp needs at least 2 tokens");
  if (mtp && c.n_mtp_layers < 1) throw Error("--mtp: the model has no MTP block");
  const Numerics nm = numerics_from_name(numerics_name);

  SequenceState st(c, nm);
  std::vector<float> streams(mtp ? static_cast<size_t>(N * hc * D) : 0);
  std::vector<TensorData> outs;
  if (!app.count("--prefill")) {
    const int64_t rows = all ? N : 1;
    std::vector<float> logits(static_cast<size_t>(rows * V));
    ForwardOutput fo;
    fo.logits = logits.data();
    fo.all_logits = all;
    fo.final_streams = mtp ? streams.data() : nullptr;
    forward(*w, st, tokens.data(), N, fo);
    outs.push_back(TensorData::f32("logits", {rows, V}, logits.data()));
  } else {
    const int64_t rows = N - prefill + 1;
    std::vector<float> logits(static_cast<size_t>(rows * V));
    ForwardOutput fo;
    fo.logits = logits.data();
    fo.final_streams = mtp ? streams.data() : nullptr;
    forward(*w, st, tokens.data(), prefill, fo);
    for (int64_t p = prefill; p < N; ++p) {
      fo.logits = logits.data() + (p - prefill + 1) * V;
      fo.final_streams = mtp ? streams.data() + p * hc * D : nullptr;
      forward(*w, st, tokens.data() + p, 1, fo);
    }
    outs.push_back(TensorData::f32("logits", {rows, V}, logits.data()));
  }
  if (mtp) {
    std::vector<float> ml(static_cast<size_t>((N - 1) * V));
    mtp_forward(*w, st, streams.data(), tokens.data() + 1, N - 1, ml.data(), true, nullptr, nullptr);
    outs.push_back(TensorData::f32("mtp_logits", {N - 1, V}, ml.data()));
  }
  write_safetensors(out_path, outs);
  return 0;
}

}  // namespace dsv4::cli
