// `dsv4 block`: one block of the model, teacher-forced on given input streams (fresh state,
// positions 0..S-1), with the outputs the golden debug files record.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <vector>

#include "base/error.h"
#include "frontends/cli/commands.h"
#include "model/forward.h"
#include "model/mtp.h"
#include "model/safetensors.h"
#include "model/weights.h"

namespace dsv4::cli {

// "1,2,3" or "@FILE" token lists (defined in cmd_logits.cc).
std::vector<int64_t> parse_token_ids(const std::string& arg);

int cmd_block(int argc, char** argv) {
  CLI::App app{
      "Run one block on given hyper-connection streams (fresh state, positions 0..S-1) and write\n"
      "F32 `attn.out` [S, D] (attention sublayer output after wo_b), `ffn.out` [S, D] (MoE output)\n"
      "and `out` [S, hc, D] (streams after the block), as the golden layers.L.* debug tensors.\n"
      "--layer mtp (or L = n_layers) runs the MTP block: the streams are the main model's final\n"
      "streams of positions 0..S-1 and --tokens the ids of positions 1..S (the next tokens); the MTP\n"
      "input projection (enorm/hnorm, e_proj + h_proj) is applied first; `out` is the MTP block\n"
      "output before its hc_head.",
      "dsv4 block"};
  std::string dir, layer_arg, streams_path, streams_tensor, tokens_arg, out_path, numerics_name = "reference";
  app.add_option("-m,--model", dir, "model directory or GGUF file")->required();
  app.add_option("--layer", layer_arg, "block index 0..n_layers-1, or mtp (= n_layers)")->required();
  app.add_option("--streams", streams_path, "safetensors file with the F32 input streams [S, hc, D]")->required();
  app.add_option("--streams-tensor", streams_tensor, "tensor name in --streams (default: its only tensor)");
  app.add_option("--tokens", tokens_arg, "token ids (hash routing; MTP: next tokens): 1,2,3 or @FILE")->required();
  app.add_option("-o,--out", out_path, "output safetensors file")->required();
  app.add_option("--numerics", numerics_name, "reference (default), precise or int8")
      ->check(CLI::IsMember({"reference", "precise", "int8"}));
  CLI11_PARSE(app, argc, argv);

  auto w = load_model(dir);
  const ModelConfig& c = w->config;
  int64_t layer = -1;
  if (layer_arg == "mtp") {
    layer = c.n_layers;
  } else {
    try {
      size_t used = 0;
      layer = std::stoll(layer_arg, &used);
      if (used != layer_arg.size()) layer = -1;
    } catch (const std::exception&) {
      layer = -1;
    }
  }
  if (layer < 0 || layer > c.n_layers || (layer == c.n_layers && c.n_mtp_layers < 1))
    throw Error("--layer " + layer_arg + ": expected 0.." + std::to_string(c.n_layers - 1) +
                (c.n_mtp_layers > 0 ? " or mtp" : ""));
  const bool mtp = layer == c.n_layers;

  TensorStore in = TensorStore::open_file(streams_path);
  if (streams_tensor.empty()) {
    if (in.tensors().size() != 1)
      throw Error(streams_path + ": holds " + std::to_string(in.tensors().size()) +
                  " tensors; name one with --streams-tensor");
    streams_tensor = in.tensors().begin()->first;
  }
  const Tensor& t = in.get(streams_tensor);
  const int64_t hc = c.hc_mult, D = c.dim;
  if (t.dtype != DType::F32 || t.ndim() != 3 || t.dim(1) != hc || t.dim(2) != D || t.dim(0) < 1)
    throw Error(streams_path + ": tensor " + streams_tensor + " must be F32 [S, " + std::to_string(hc) + ", " +
                std::to_string(D) + "], got " + std::string(dtype_name(t.dtype)) + " " + t.shape_str());
  const int64_t S = t.dim(0);
  std::vector<float> X = in.read_f32(streams_tensor);
  std::vector<int64_t> tokens = parse_token_ids(tokens_arg);
  if (static_cast<int64_t>(tokens.size()) != S)
    throw Error("--tokens: " + std::to_string(tokens.size()) + " ids for " + std::to_string(S) + " stream rows");
  check_tokens(c, tokens.data(), S);
  const Numerics nm = numerics_from_name(numerics_name);

  SequenceState st(c, nm);
  std::vector<float> attn_out(static_cast<size_t>(S * D)), ffn_out(static_cast<size_t>(S * D));
  BlockTrace tr;
  tr.attn_out = attn_out.data();
  tr.ffn_out = ffn_out.data();
  std::vector<float> out(static_cast<size_t>(S * hc * D));
  if (mtp) {
    mtp_forward(*w, st, X.data(), tokens.data(), S, nullptr, false, out.data(), &tr);
  } else {
    block_forward(*w, w->layers[static_cast<size_t>(layer)], st.layers[static_cast<size_t>(layer)], tokens.data(), 0, S,
                  X.data(), nm, st.ws, &tr);
    out = X;
  }
  write_safetensors(out_path, {TensorData::f32("attn.out", {S, D}, attn_out.data()),
                               TensorData::f32("ffn.out", {S, D}, ffn_out.data()),
                               TensorData::f32("out", {S, hc, D}, out.data())});
  return 0;
}

}  // namespace dsv4::cli
