// `dsv4 convert -m DIR --out FILE.gguf [--type T] [--expert-type T] [--tensor-type PATTERN=T ...]
// [--mtp-out FILE]`: an official checkpoint -> a deepseek4 GGUF in llama.cpp's layout.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "base/error.h"
#include "base/file.h"
#include "engine/model_files.h"
#include "frontends/cli/commands.h"
#include "frontends/cli/generation_cli.h"
#include "model/gguf_convert.h"
#include "model/weights.h"

namespace dsv4::cli {

int cmd_convert(int argc, char** argv) {
  CLI::App app{
      "Convert an official checkpoint (safetensors) to a deepseek4 GGUF file (llama.cpp's layout).\n"
      "FP8 dense weights are dequantized exactly and stored as --type; FP4 routed experts are repacked\n"
      "bit-exactly into MXFP4 (--expert-type mxfp4) or requantized; 1-D tensors are F32, tid2eid I32.\n"
      "The MTP block goes to a sidecar (--mtp-out, default: OUT with -mtp before .gguf).\n"
      "Types: f32, f16, bf16 (lossless for FP8 weights), q8_0, q4_K, q2_K; mxfp4 for the experts.",
      "dsv4 convert"};
  std::string dir, out, type = "bf16", expert_type = "mxfp4", mtp_out;
  std::vector<std::string> tensor_types;
  app.add_option("-m,--model", dir, "model directory (official layout)")->required();
  app.add_option("--out", out, "output GGUF file")->required();
  app.add_option("--type", type, "type of the dense 2-D weights (default bf16)");
  app.add_option("--expert-type", expert_type, "type of the routed experts (default mxfp4)");
  app.add_option("--tensor-type", tensor_types, "PATTERN=TYPE: type of the GGUF tensors whose name matches PATTERN (regex)");
  app.add_option("--mtp-out", mtp_out, "MTP sidecar GGUF file");
  CLI11_PARSE(app, argc, argv);

  if (out.size() < 6 || out.compare(out.size() - 5, 5, ".gguf") != 0) throw Error("--out " + out + ": the file name must end in .gguf");
  GgufConvertOptions o;
  o.dense_type = parse_ggml_type(type);
  o.expert_type = parse_ggml_type(expert_type);
  for (const std::string& tt : tensor_types) {
    const size_t eq = tt.rfind('=');
    if (eq == std::string::npos || eq == 0) throw Error("--tensor-type " + tt + ": expected PATTERN=TYPE");
    o.overrides.push_back({tt.substr(0, eq), parse_ggml_type(tt.substr(eq + 1))});
  }
  auto w = load_model(dir);
  if (w->config.n_mtp_layers > 0) o.mtp_out = mtp_out.empty() ? out.substr(0, out.size() - 5) + "-mtp.gguf" : mtp_out;
  GgufVocab vocab;
  const std::string tok = dir + "/tokenizer.json";
  if (file_exists(tok)) vocab = gguf_vocab_from_tokenizer_json(tok);
  else std::fprintf(stderr, "dsv4 convert: %s missing, writing no tokenizer\n", tok.c_str());
  ProgressBar bar("converting", 1);
  const GgufConvertReport r = convert_to_gguf(*w, vocab, out, o, [&](int64_t done, int64_t total) { bar.update(done, total); });
  bar.clear();
  std::printf("ok: %s: %lld tensors, %lld bytes (checked on read-back, loads as a model)\n", out.c_str(), (long long)r.tensors, (long long)r.bytes);
  if (r.mtp_tensors > 0) std::printf("ok: %s: %lld tensors, %lld bytes (MTP sidecar)\n", o.mtp_out.c_str(), (long long)r.mtp_tensors, (long long)r.mtp_bytes);
  return 0;
}

}  // namespace dsv4::cli
