// Export of a trainer checkpoint to the official release layout (no torch): the same encoders
// as the QAT fake quantisation (model/init.h init_codec), so the engine reads back exactly the
// weights the trainer's QAT forward used. Also the unquantised master weights as an F32 GGUF:
// the reference that measures what the FP8 / FP4 export loses.
#include <cstring>
#include <filesystem>

#include "base/error.h"
#include "base/file.h"
#include "engine/model_files.h"
#include "model/gguf_convert.h"
#include "model/init.h"
#include "model/weights.h"
#include "ops/formats.h"
#include "train/checkpoint.h"
#include "train/run.h"

namespace dsv4::train {

namespace fs = std::filesystem;

namespace {
std::vector<float> read_param(const TensorStore& st, const std::string& name, const std::vector<int64_t>& shape,
                              const std::string& path) {
  const dsv4::Tensor* t = st.find(name);
  if (!t) throw Error(path + ": missing tensor " + name);
  if (t->dtype != DType::F32 || t->shape != shape) throw Error(path + ": tensor " + name + " has dtype/shape " + t->shape_str() + " unlike the model config");
  return st.read_f32(name);
}
bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// A checkpoint opened for export: its file, tensors and the model config it was trained with.
struct OpenCheckpoint {
  std::string path;
  TensorStore st;
  ModelConfig config;
  std::string config_json;  // config.json as the run stored it
};
OpenCheckpoint open_checkpoint(const std::string& checkpoint) {
  const std::string path = fs::is_directory(checkpoint) ? (fs::path(checkpoint) / "checkpoint.safetensors").string() : checkpoint;
  TensorStore st = TensorStore::open_file(path);
  const CheckpointMeta meta = read_meta(st, path);
  ModelConfig c = parse_config(meta.model_config, path + ": meta.model_config");
  return {path, std::move(st), std::move(c), meta.model_config};
}

// The checkpoint's name of an official tensor (router bias and hash table are buffers).
std::string source_name(const std::string& name) {
  const bool buffer = ends_with(name, ".gate.bias") || ends_with(name, ".gate.tid2eid");
  return (buffer ? "buffer." : "param.") + name;
}

TensorData read_i64_tensor(const OpenCheckpoint& ck, const TensorSpec& s) {
  const std::string src = source_name(s.name);
  const dsv4::Tensor* t = ck.st.find(src);
  if (!t || t->dtype != DType::I64 || t->shape != s.shape) throw Error(ck.path + ": missing or misshaped tensor " + src);
  const std::vector<int64_t> v = ck.st.read_i64(src);
  return TensorData::i64(s.name, s.shape, v.data());
}
}  // namespace

void export_master_gguf(const std::string& checkpoint, const std::string& gguf_path, const std::string& tokenizer_json) {
  if (tokenizer_json.empty()) throw Error("export --master-gguf: a GGUF carries its vocabulary: give --tokenizer");
  const OpenCheckpoint ck = open_checkpoint(checkpoint);
  const TensorStore& st = ck.st;
  const std::string& path = ck.path;
  const ModelConfig& c = ck.config;
  // The official names with F32 values: matrices (FP8 / FP4 / BF16 in the release) at their
  // logical [rows, cols], unquantised; the release's BF16 vectors (norms) rounded to BF16 as the
  // release and GGUF readers keep them.
  auto tensors = std::make_shared<std::vector<TensorData>>();
  for (const TensorSpec& s : expected_tensors(c)) {
    if (ends_with(s.name, ".scale") && s.dtype == DType::F8_E8M0) continue;  // scales of quantised weights
    if (s.dtype == DType::I64) {
      tensors->push_back(read_i64_tensor(ck, s));
      continue;
    }
    std::vector<int64_t> shape = s.shape;
    if (s.dtype == DType::I8) shape.back() *= 2;  // FP4: two values per stored byte
    std::vector<float> v = read_param(st, source_name(s.name), shape, path);
    if (s.dtype == DType::BF16 && shape.size() == 1)
      for (float& x : v) x = round_bf16(x);
    tensors->push_back(TensorData::f32(s.name, shape, v.data()));
  }
  std::vector<dsv4::Tensor> views;
  for (const TensorData& t : *tensors) {
    dsv4::Tensor v;
    v.name = t.name;
    v.dtype = t.dtype;
    v.shape = t.shape;
    v.data = t.bytes.data();
    v.nbytes = t.bytes.size();
    v.file = path;
    views.push_back(std::move(v));
  }
  ModelWeights w;
  w.config = c;
  w.store = std::make_shared<TensorStore>(TensorStore::from_views(std::move(views), {path}, {tensors}));
  GgufConvertOptions o;
  o.dense_type = GgmlType::F32;
  o.expert_type = GgmlType::F32;
  convert_to_gguf(w, gguf_vocab_from_tokenizer_json(tokenizer_json), gguf_path, o);
}

void export_checkpoint(const std::string& checkpoint, const std::string& model_dir, const std::string& tokenizer_json) {
  const OpenCheckpoint ck = open_checkpoint(checkpoint);
  const TensorStore& st = ck.st;
  const std::string& path = ck.path;
  const ModelConfig& c = ck.config;
  const std::vector<TensorSpec> specs = expected_tensors(c);
  std::vector<TensorData> out;
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec& s = specs[i];
    const std::string src = source_name(s.name);
    if (s.dtype == DType::I64) {
      out.push_back(read_i64_tensor(ck, s));
    } else if (s.dtype == DType::F32) {
      std::vector<float> v = read_param(st, src, s.shape, path);
      out.push_back(TensorData::f32(s.name, s.shape, v.data()));
    } else if (s.dtype == DType::BF16) {
      std::vector<float> v = read_param(st, src, s.shape, path);
      TensorData t{s.name, DType::BF16, s.shape, std::vector<uint8_t>(v.size() * 2)};
      for (size_t k = 0; k < v.size(); ++k) {
        const uint16_t b = init_codec::f32_to_bf16(v[k]);
        std::memcpy(t.bytes.data() + 2 * k, &b, 2);
      }
      out.push_back(std::move(t));
    } else if (s.dtype == DType::F8_E4M3) {
      const int64_t rows = s.shape[0], cols = s.shape[1];
      std::vector<float> v = read_param(st, src, s.shape, path);
      const TensorSpec& sc = specs.at(i + 1);
      TensorData w{s.name, DType::F8_E4M3, s.shape, std::vector<uint8_t>(static_cast<size_t>(rows * cols))};
      TensorData sd{sc.name, DType::F8_E8M0, sc.shape, std::vector<uint8_t>(static_cast<size_t>(sc.shape[0] * sc.shape[1]))};
      init_codec::quantize_fp8(v.data(), rows, cols, c.weight_block, w.bytes.data(), sd.bytes.data());
      out.push_back(std::move(w));
      out.push_back(std::move(sd));
      ++i;
    } else if (s.dtype == DType::I8) {
      const int64_t rows = s.shape[0], cols = 2 * s.shape[1];
      std::vector<float> v = read_param(st, src, {rows, cols}, path);
      const TensorSpec& sc = specs.at(i + 1);
      TensorData w{s.name, DType::I8, s.shape, std::vector<uint8_t>(static_cast<size_t>(rows * cols / 2))};
      TensorData sd{sc.name, DType::F8_E8M0, sc.shape, std::vector<uint8_t>(static_cast<size_t>(rows * cols / 32))};
      for (int64_t r = 0; r < rows; ++r)
        init_codec::quantize_fp4_row(v.data() + r * cols, cols, w.bytes.data() + r * cols / 2, sd.bytes.data() + r * cols / 32);
      out.push_back(std::move(w));
      out.push_back(std::move(sd));
      ++i;
    } else {
      throw Error("export: unexpected dtype of " + s.name);
    }
  }
  fs::create_directories(model_dir);
  write_safetensors((fs::path(model_dir) / "model.safetensors").string(), out);
  write_file_atomic((fs::path(model_dir) / "config.json").string(), ck.config_json);
  if (!tokenizer_json.empty())
    write_file_atomic((fs::path(model_dir) / "tokenizer.json").string(), read_file(tokenizer_json));
}

}  // namespace dsv4::train
