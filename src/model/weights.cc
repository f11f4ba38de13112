#include "model/weights.h"

#include <cstring>
#include <set>

#include "base/error.h"
#include "model/gguf_model.h"

namespace dsv4 {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Builds the spec list and, in the same walk, the binding: one description of the layout.
struct LayoutWalker {
  const ModelConfig& c;
  std::vector<TensorSpec>* specs = nullptr;  // collect specs
  const TensorStore* store = nullptr;        // or bind from a store

  const Tensor* tensor(const std::string& name, DType dt, std::vector<int64_t> shape) {
    if (specs) specs->push_back({name, dt, std::move(shape)});
    return store ? &store->get(name) : nullptr;
  }
  // A weight bound from a GGUF file (ggml blocks, no scale tensor), standing for `role`.
  bool ggml(const std::string& name, WeightFormat role, int64_t out, int64_t in, Linear* l) {
    const Tensor* t = store ? store->find(name) : nullptr;
    if (!t || t->ggml_type < 0) return false;
    l->weight = t;
    l->out = out;
    l->in = in;
    l->ggml_type = static_cast<GgmlType>(t->ggml_type);
    l->ggml_role = role;
    // BF16 / F32 data standing for BF16 / F32 weights use the native kernels.
    if (role == WeightFormat::kBf16 && l->ggml_type == GgmlType::BF16) l->format = WeightFormat::kBf16;
    else if (role == WeightFormat::kF32 && l->ggml_type == GgmlType::F32) l->format = WeightFormat::kF32;
    else l->format = WeightFormat::kGgml;
    return true;
  }
  Linear fp8(const std::string& prefix, int64_t out, int64_t in) {
    Linear l;
    if (ggml(prefix + ".weight", WeightFormat::kFp8Block, out, in, &l)) return l;
    l.format = WeightFormat::kFp8Block;
    l.out = out;
    l.in = in;
    l.block = c.weight_block;
    l.weight = tensor(prefix + ".weight", DType::F8_E4M3, {out, in});
    l.scale = tensor(prefix + ".scale", DType::F8_E8M0, {ceil_div(out, c.weight_block), ceil_div(in, c.weight_block)});
    return l;
  }
  Linear fp4(const std::string& prefix, int64_t out, int64_t in) {
    Linear l;
    if (ggml(prefix + ".weight", WeightFormat::kFp4, out, in, &l)) return l;
    l.format = WeightFormat::kFp4;
    l.out = out;
    l.in = in;
    l.weight = tensor(prefix + ".weight", DType::I8, {out, in / 2});
    l.scale = tensor(prefix + ".scale", DType::F8_E8M0, {out, in / 32});
    return l;
  }
  Linear bf16(const std::string& name, int64_t out, int64_t in) {
    Linear l;
    if (ggml(name, WeightFormat::kBf16, out, in, &l)) return l;
    l.format = WeightFormat::kBf16;
    l.out = out;
    l.in = in;
    l.weight = tensor(name, DType::BF16, {out, in});
    return l;
  }
  HcWeights hc(const std::string& prefix, int64_t mix, int64_t n_scale) {
    HcWeights h;
    h.fn = tensor(prefix + "_fn", DType::F32, {mix, c.hc_dim()});
    h.base = tensor(prefix + "_base", DType::F32, {mix});
    h.scale = tensor(prefix + "_scale", DType::F32, {n_scale});
    return h;
  }
  CompressorWeights compressor(const std::string& prefix, int64_t ratio, int64_t d) {
    const int64_t coff = ratio == 4 ? 2 : 1;
    CompressorWeights w;
    w.ape = tensor(prefix + ".ape", DType::F32, {ratio, coff * d});
    w.wkv = bf16(prefix + ".wkv.weight", coff * d, c.dim);
    w.wgate = bf16(prefix + ".wgate.weight", coff * d, c.dim);
    w.norm = tensor(prefix + ".norm.weight", DType::BF16, {d});
    return w;
  }
  ExpertWeights expert_fp8(const std::string& prefix, int64_t inter) {
    ExpertWeights e;
    e.w1 = fp8(prefix + ".w1", inter, c.dim);
    e.w2 = fp8(prefix + ".w2", c.dim, inter);
    e.w3 = fp8(prefix + ".w3", inter, c.dim);
    return e;
  }
  ExpertWeights expert_routed(const std::string& prefix) {
    if (c.expert_format == ExpertFormat::kFp8) return expert_fp8(prefix, c.moe_inter_dim);
    ExpertWeights e;
    e.w1 = fp4(prefix + ".w1", c.moe_inter_dim, c.dim);
    e.w2 = fp4(prefix + ".w2", c.dim, c.moe_inter_dim);
    e.w3 = fp4(prefix + ".w3", c.moe_inter_dim, c.dim);
    return e;
  }
  BlockWeights block(const std::string& p, int64_t layer) {
    BlockWeights b;
    b.layer = layer;
    const int64_t ratio = c.compress_ratio(layer);
    b.hc_attn = hc(p + ".hc_attn", c.hc_mix_dim(), 3);
    b.hc_ffn = hc(p + ".hc_ffn", c.hc_mix_dim(), 3);
    b.attn_norm = tensor(p + ".attn_norm.weight", DType::BF16, {c.dim});
    b.ffn_norm = tensor(p + ".ffn_norm.weight", DType::BF16, {c.dim});
    AttentionWeights& a = b.attn;
    a.attn_sink = tensor(p + ".attn.attn_sink", DType::F32, {c.n_heads});
    a.wq_a = fp8(p + ".attn.wq_a", c.q_lora_rank, c.dim);
    a.q_norm = tensor(p + ".attn.q_norm.weight", DType::BF16, {c.q_lora_rank});
    a.wq_b = fp8(p + ".attn.wq_b", c.n_heads * c.head_dim, c.q_lora_rank);
    a.wkv = fp8(p + ".attn.wkv", c.head_dim, c.dim);
    a.kv_norm = tensor(p + ".attn.kv_norm.weight", DType::BF16, {c.head_dim});
    a.wo_a = fp8(p + ".attn.wo_a", c.o_groups * c.o_lora_rank, c.n_heads * c.head_dim / c.o_groups);
    a.wo_b = fp8(p + ".attn.wo_b", c.dim, c.o_groups * c.o_lora_rank);
    if (ratio != 0) {
      a.has_compressor = true;
      a.compressor = compressor(p + ".attn.compressor", ratio, c.head_dim);
    }
    if (ratio == 4) {
      a.has_indexer = true;
      a.indexer.wq_b = fp8(p + ".attn.indexer.wq_b", c.index_n_heads * c.index_head_dim, c.q_lora_rank);
      a.indexer.weights_proj = bf16(p + ".attn.indexer.weights_proj.weight", c.index_n_heads, c.dim);
      a.indexer.compressor = compressor(p + ".attn.indexer.compressor", ratio, c.index_head_dim);
    }
    MoeWeights& m = b.ffn;
    m.gate = bf16(p + ".ffn.gate.weight", c.n_routed_experts, c.dim);
    if (c.is_hash_layer(layer))
      m.tid2eid = tensor(p + ".ffn.gate.tid2eid", DType::I64, {c.vocab_size, c.n_activated_experts});
    else
      m.bias = tensor(p + ".ffn.gate.bias", DType::F32, {c.n_routed_experts});
    for (int64_t e = 0; e < c.n_routed_experts; ++e)
      m.experts.push_back(expert_routed(p + ".ffn.experts." + std::to_string(e)));
    if (c.n_shared_experts > 0) {
      m.has_shared = true;
      m.shared = expert_fp8(p + ".ffn.shared_experts", c.n_shared_experts * c.moe_inter_dim);
    }
    return b;
  }
  void walk(ModelWeights* w) {
    const Tensor* embed = tensor("embed.weight", DType::BF16, {c.vocab_size, c.dim});
    std::vector<BlockWeights> layers;
    for (int64_t l = 0; l < c.n_layers; ++l) layers.push_back(block("layers." + std::to_string(l), l));
    std::vector<MtpWeights> mtp;
    for (int64_t i = 0; i < c.n_mtp_layers; ++i) {
      const std::string p = "mtp." + std::to_string(i);
      MtpWeights m;
      m.block = block(p, c.n_layers + i);
      m.e_proj = fp8(p + ".e_proj", c.dim, c.dim);
      m.h_proj = fp8(p + ".h_proj", c.dim, c.dim);
      m.enorm = tensor(p + ".enorm.weight", DType::BF16, {c.dim});
      m.hnorm = tensor(p + ".hnorm.weight", DType::BF16, {c.dim});
      m.norm = tensor(p + ".norm.weight", DType::BF16, {c.dim});
      m.hc_head = hc(p + ".hc_head", c.hc_mult, 1);
      mtp.push_back(std::move(m));
    }
    const Tensor* norm = tensor("norm.weight", DType::BF16, {c.dim});
    const Tensor* head = tensor("head.weight", DType::BF16, {c.vocab_size, c.dim});
    HcWeights hc_head = hc("hc_head", c.hc_mult, 1);
    if (w) {
      w->embed = embed;
      w->head = head;
      w->norm = norm;
      w->hc_head = hc_head;
      w->layers = std::move(layers);
      w->mtp = std::move(mtp);
    }
  }
};

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

}  // namespace

std::vector<TensorSpec> expected_tensors(const ModelConfig& config) {
  std::vector<TensorSpec> specs;
  LayoutWalker walker{config, &specs, nullptr};
  walker.walk(nullptr);
  return specs;
}

void validate_tensors(const ModelConfig& c, const TensorStore& store) {
  const std::vector<TensorSpec> specs = expected_tensors(c);
  std::set<std::string> expected;
  const std::string where = store.files().empty() ? std::string("<model>") : store.files().front();
  for (const TensorSpec& s : specs) {
    expected.insert(s.name);
    const Tensor* t = store.find(s.name);
    if (!t) throw Error(where + ": missing tensor " + s.name + " (" + std::string(dtype_name(s.dtype)) + " " + shape_str(s.shape) + ")");
    if (t->dtype != s.dtype)
      throw Error(t->file + ": tensor " + s.name + " has dtype " + std::string(dtype_name(t->dtype)) + ", expected " + std::string(dtype_name(s.dtype)));
    if (t->shape != s.shape)
      throw Error(t->file + ": tensor " + s.name + " has shape " + t->shape_str() + ", expected " + shape_str(s.shape));
  }
  for (const auto& [name, t] : store.tensors())
    if (!expected.count(name)) throw Error(t.file + ": unexpected tensor " + name + " (not part of this config's layout)");
  // Hash-routing tables index experts directly: out-of-range ids would read out of bounds.
  for (int64_t l = 0; l < c.n_hash_layers; ++l) {
    const Tensor& t = store.get("layers." + std::to_string(l) + ".ffn.gate.tid2eid");
    const int64_t n = t.numel();
    for (int64_t i = 0; i < n; ++i) {
      int64_t v;
      std::memcpy(&v, t.data + i * 8, 8);
      if (v < 0 || v >= c.n_routed_experts)
        throw Error(t.file + ": tensor " + t.name + " holds expert id " + std::to_string(v) + " at row " + std::to_string(i / c.n_activated_experts) +
                    ", outside [0, " + std::to_string(c.n_routed_experts) + ")");
    }
  }
}

std::shared_ptr<const ModelWeights> bind_weights(const ModelConfig& config, std::shared_ptr<const TensorStore> store, const std::string& dir) {
  auto w = std::make_shared<ModelWeights>();
  w->config = config;
  w->dir = dir;
  w->store = store;
  LayoutWalker walker{w->config, nullptr, store.get()};
  walker.walk(w.get());
  return w;
}

std::shared_ptr<const ModelWeights> load_model(const std::string& dir, FileMemory memory) {
  if (is_gguf_path(dir)) return load_gguf_model(dir, "", memory);
  ModelConfig config = load_config(dir);
  auto store = std::make_shared<TensorStore>(TensorStore::open_dir(dir, memory));
  if (!config.expert_format_given) {
    // Older configs omit expert_dtype: take the routed experts' format from the files.
    const Tensor* t = store->find("layers.0.ffn.experts.0.w1.weight");
    if (t && t->dtype == DType::F8_E4M3) config.expert_format = ExpertFormat::kFp8;
  }
  validate_tensors(config, *store);
  return bind_weights(config, store, dir);
}

TensorUse tensor_use(const std::string& name) {
  auto ends = [&](const std::string& s) { return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0; };
  if (name.rfind("mtp.", 0) == 0) return TensorUse::kMtp;
  if (name.find(".ffn.experts.") != std::string::npos) return TensorUse::kRoutedExpert;
  if (name == "embed.weight" || ends("tid2eid")) return TensorUse::kOneRow;
  return TensorUse::kAll;
}

int64_t active_weight_bytes(const ModelWeights& w) {
  const ModelConfig& c = w.config;
  int64_t bytes = 0;
  for (const auto& [name, t] : w.store->tensors()) {
    const int64_t b = static_cast<int64_t>(t.nbytes);
    switch (tensor_use(name)) {
      case TensorUse::kMtp: break;
      case TensorUse::kRoutedExpert: bytes += b * c.n_activated_experts / c.n_routed_experts; break;
      case TensorUse::kOneRow: bytes += t.shape.empty() ? b : b / t.shape[0]; break;
      case TensorUse::kAll: bytes += b; break;
    }
  }
  return bytes;
}

void touch_weight_pages(const ModelWeights& w, const std::function<void(int64_t, int64_t)>& progress) {
  volatile uint8_t sink = 0;
  int64_t total = 0, done = 0;
  for (const auto& [name, t] : w.store->tensors()) total += static_cast<int64_t>(t.nbytes);
  for (const auto& [name, t] : w.store->tensors()) {
    for (size_t off = 0; off < t.nbytes; off += 4096) sink = sink + t.data[off];
    done += static_cast<int64_t>(t.nbytes);
    if (progress) progress(done, total);
  }
  (void)sink;
}

}  // namespace dsv4
