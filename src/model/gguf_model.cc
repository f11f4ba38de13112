#include "model/gguf_model.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "model/weights.h"
#include "ops/formats.h"

namespace dsv4 {
namespace {

using nlohmann::json;

const std::string kArch = "deepseek4";

// A GGUF F32 holds what was a double in config.json: the shortest decimal that reads back as
// the same float is the value the converter was given (1e-6, not 9.99999997e-07).
double float_value(double stored) {
  const float f = static_cast<float>(stored);
  if (static_cast<double>(f) != stored) return stored;  // an F64 or an integer: exact already
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), f);
  return std::strtod(std::string(buf, r.ptr).c_str(), nullptr);
}

std::string ne_string(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

// The per-block names (after "layers.L." / "mtp.I.") and their GGUF names.
const std::pair<const char*, const char*> kBlockNames[] = {
    {"hc_attn_fn", "hc_attn_fn.weight"},
    {"hc_attn_base", "hc_attn_base.weight"},
    {"hc_attn_scale", "hc_attn_scale.weight"},
    {"hc_ffn_fn", "hc_ffn_fn.weight"},
    {"hc_ffn_base", "hc_ffn_base.weight"},
    {"hc_ffn_scale", "hc_ffn_scale.weight"},
    {"attn_norm.weight", "attn_norm.weight"},
    {"ffn_norm.weight", "ffn_norm.weight"},
    {"attn.attn_sink", "attn_sinks.weight"},
    {"attn.wq_a.weight", "attn_q_a.weight"},
    {"attn.q_norm.weight", "attn_q_a_norm.weight"},
    {"attn.wq_b.weight", "attn_q_b.weight"},
    {"attn.wkv.weight", "attn_kv.weight"},
    {"attn.kv_norm.weight", "attn_kv_a_norm.weight"},
    {"attn.wo_a.weight", "attn_output_a.weight"},
    {"attn.wo_b.weight", "attn_output_b.weight"},
    {"attn.compressor.wkv.weight", "attn_compressor_kv.weight"},
    {"attn.compressor.wgate.weight", "attn_compressor_gate.weight"},
    {"attn.compressor.ape", "attn_compressor_ape.weight"},
    {"attn.compressor.norm.weight", "attn_compressor_norm.weight"},
    {"attn.indexer.wq_b.weight", "indexer.attn_q_b.weight"},
    {"attn.indexer.weights_proj.weight", "indexer.proj.weight"},
    {"attn.indexer.compressor.wkv.weight", "indexer_compressor_kv.weight"},
    {"attn.indexer.compressor.wgate.weight", "indexer_compressor_gate.weight"},
    {"attn.indexer.compressor.ape", "indexer_compressor_ape.weight"},
    {"attn.indexer.compressor.norm.weight", "indexer_compressor_norm.weight"},
    {"ffn.gate.weight", "ffn_gate_inp.weight"},
    {"ffn.gate.bias", "exp_probs_b.bias"},
    {"ffn.gate.tid2eid", "ffn_gate_tid2eid.weight"},
    {"ffn.shared_experts.w1.weight", "ffn_gate_shexp.weight"},
    {"ffn.shared_experts.w2.weight", "ffn_down_shexp.weight"},
    {"ffn.shared_experts.w3.weight", "ffn_up_shexp.weight"},
    // MTP block only (sidecar)
    {"e_proj.weight", "e_proj.weight"},
    {"h_proj.weight", "h_proj.weight"},
    {"enorm.weight", "enorm.weight"},
    {"hnorm.weight", "hnorm.weight"},
    {"norm.weight", "norm.weight"},
    {"hc_head_fn", "hc_head_fn.weight"},
    {"hc_head_base", "hc_head_base.weight"},
    {"hc_head_scale", "hc_head_scale.weight"},
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::string gguf_tensor_name(const std::string& official, int64_t* expert) {
  *expert = -1;
  if (ends_with(official, ".scale")) return "";
  if (official == "embed.weight") return "token_embd.weight";
  if (official == "head.weight") return "output.weight";
  if (official == "norm.weight") return "output_norm.weight";
  if (official == "hc_head_fn") return "output_hc_fn.weight";
  if (official == "hc_head_base") return "output_hc_base.weight";
  if (official == "hc_head_scale") return "output_hc_scale.weight";
  std::string prefix, rest;
  for (const char* head : {"layers.", "mtp."}) {
    const size_t hl = std::strlen(head);
    if (official.compare(0, hl, head) != 0) continue;
    const size_t dot = official.find('.', hl);
    if (dot == std::string::npos) break;
    const std::string index = official.substr(hl, dot - hl);
    prefix = (std::string(head) == "layers." ? "blk." : "mtp.") + index + ".";
    rest = official.substr(dot + 1);
  }
  if (prefix.empty()) throw Error("no GGUF name for tensor " + official);
  static const std::string kExperts = "ffn.experts.";
  if (rest.compare(0, kExperts.size(), kExperts) == 0) {
    const size_t dot = rest.find('.', kExperts.size());
    *expert = std::stoll(rest.substr(kExperts.size(), dot - kExperts.size()));
    const std::string w = rest.substr(dot + 1);
    if (w == "w1.weight") return prefix + "ffn_gate_exps.weight";
    if (w == "w2.weight") return prefix + "ffn_down_exps.weight";
    if (w == "w3.weight") return prefix + "ffn_up_exps.weight";
    throw Error("no GGUF name for tensor " + official);
  }
  for (const auto& [o, g] : kBlockNames)
    if (rest == o) return prefix + g;
  throw Error("no GGUF name for tensor " + official);
}

ModelConfig gguf_model_config(const GgufFile& f) {
  const std::string arch = f.get_string("general.architecture");
  if (arch != kArch) throw Error(f.path() + ": general.architecture is '" + arch + "', expected 'deepseek4'");
  auto key = [](const std::string& k) { return kArch + "." + k; };
  // The keys as an HF config.json, so that parse_config applies every check it has.
  json j;
  j["model_type"] = "deepseek_v4";
  auto req_int = [&](const char* field, const std::string& k) { j[field] = f.get_int(key(k)); };
  auto opt_num = [&](const char* field, const std::string& k) {
    if (f.has(key(k))) j[field] = float_value(f.get_float(key(k)));
  };
  const int64_t n_layers = f.get_int(key("block_count"));
  j["num_hidden_layers"] = n_layers;
  req_int("hidden_size", "embedding_length");
  if (f.has(key("vocab_size"))) {
    j["vocab_size"] = f.get_int(key("vocab_size"));
  } else if (const GgufTensor* t = f.find_tensor("token_embd.weight"); t && t->ne.size() == 2) {
    j["vocab_size"] = t->ne[1];
  } else {
    j["vocab_size"] = f.get_int(key("vocab_size"));  // throws "missing"
  }
  req_int("num_attention_heads", "attention.head_count");
  if (f.has(key("attention.head_count_kv"))) j["num_key_value_heads"] = f.get_int(key("attention.head_count_kv"));
  req_int("head_dim", "attention.key_length");
  if (f.has(key("attention.value_length")) && f.get_int(key("attention.value_length")) != f.get_int(key("attention.key_length")))
    throw Error(f.path() + ": metadata key 'deepseek4.attention.value_length' differs from key_length (V4 shares K and V)");
  req_int("qk_rope_head_dim", "rope.dimension_count");
  req_int("q_lora_rank", "attention.q_lora_rank");
  req_int("o_groups", "attention.output_group_count");
  req_int("o_lora_rank", "attention.output_lora_rank");
  j["sliding_window"] = f.get_int(key("attention.sliding_window"), 128);
  opt_num("rope_theta", "rope.freq_base");
  opt_num("compress_rope_theta", "attention.compress_rope_freq_base");
  if (f.has(key("context_length"))) j["max_position_embeddings"] = f.get_int(key("context_length"));
  req_int("index_n_heads", "attention.indexer.head_count");
  req_int("index_head_dim", "attention.indexer.key_length");
  req_int("index_topk", "attention.indexer.top_k");
  req_int("n_routed_experts", "expert_count");
  j["n_shared_experts"] = f.get_int(key("expert_shared_count"), 0);
  req_int("num_experts_per_tok", "expert_used_count");
  req_int("moe_intermediate_size", "expert_feed_forward_length");
  if (f.has(key("expert_shared_feed_forward_length"))) {
    const int64_t want = f.get_int(key("expert_feed_forward_length")) * f.get_int(key("expert_shared_count"), 0);
    if (f.get_int(key("expert_shared_feed_forward_length")) != want)
      throw Error(f.path() + ": metadata key 'deepseek4.expert_shared_feed_forward_length' is not expert_feed_forward_length x expert_shared_count");
  }
  j["num_hash_layers"] = f.get_int(key("hash_layer_count"), 0);
  j["routed_scaling_factor"] = f.has(key("expert_weights_scale")) ? float_value(f.get_float(key("expert_weights_scale"))) : 1.5;
  if (f.has(key("swiglu_clamp_exp"))) {
    const std::vector<double> v = f.get_float_array(key("swiglu_clamp_exp"));
    if (v.empty()) throw Error(f.path() + ": metadata key 'deepseek4.swiglu_clamp_exp' is empty");
    for (double x : v)
      if (x != v[0]) throw Error(f.path() + ": metadata key 'deepseek4.swiglu_clamp_exp' varies between layers (not supported)");
    j["swiglu_limit"] = float_value(v[0]);
  } else {
    opt_num("swiglu_limit", "swiglu_limit");
  }
  if (f.has(key("expert_gating_func")) && f.get_int(key("expert_gating_func")) != 4)
    throw Error(f.path() + ": metadata key 'deepseek4.expert_gating_func' = " + std::to_string(f.get_int(key("expert_gating_func"))) +
                ", only 4 (sqrt-softplus) is supported");
  if (!f.get_bool(key("expert_weights_norm"), true))
    throw Error(f.path() + ": metadata key 'deepseek4.expert_weights_norm' is false (V4 normalises the top-k weights)");
  req_int("hc_mult", "hyper_connection.count");
  req_int("hc_sinkhorn_iters", "hyper_connection.sinkhorn_iterations");
  opt_num("hc_eps", "hyper_connection.epsilon");
  opt_num("rms_norm_eps", "attention.layer_norm_rms_epsilon");
  if (f.has(key("rope.scaling.type"))) {
    const std::string type = f.get_string(key("rope.scaling.type"));
    if (type != "none") {
      json rs;
      rs["type"] = type;
      if (f.has(key("rope.scaling.factor"))) rs["factor"] = float_value(f.get_float(key("rope.scaling.factor")));
      if (f.has(key("rope.scaling.original_context_length"))) rs["original_max_position_embeddings"] = f.get_int(key("rope.scaling.original_context_length"));
      if (f.has(key("rope.scaling.yarn_beta_fast"))) rs["beta_fast"] = float_value(f.get_float(key("rope.scaling.yarn_beta_fast")));
      if (f.has(key("rope.scaling.yarn_beta_slow"))) rs["beta_slow"] = float_value(f.get_float(key("rope.scaling.yarn_beta_slow")));
      j["rope_scaling"] = rs;
    }
  }
  // The converter writes the shipped list (L + MTP entries); the main model uses the first L.
  std::vector<int64_t> ratios = f.get_int_array(key("attention.compress_ratios"));
  if (static_cast<int64_t>(ratios.size()) < n_layers)
    throw Error(f.path() + ": metadata key 'deepseek4.attention.compress_ratios' has " + std::to_string(ratios.size()) +
                " entries, fewer than block_count " + std::to_string(n_layers));
  ratios.resize(static_cast<size_t>(n_layers));
  j["compress_ratios"] = ratios;
  j["num_nextn_predict_layers"] = 0;
  if (f.has("tokenizer.ggml.bos_token_id")) j["bos_token_id"] = f.get_int("tokenizer.ggml.bos_token_id");
  if (f.has("tokenizer.ggml.eos_token_id")) j["eos_token_id"] = f.get_int("tokenizer.ggml.eos_token_id");
  ModelConfig c = parse_config(j.dump(), f.path() + " (deepseek4 metadata)");
  c.expert_format = ExpertFormat::kFp4;  // routed experts stand for the official FP4 ones
  c.expert_format_given = true;
  return c;
}

namespace {

// Binds one file's tensors for the given specs.
struct Binder {
  const ModelConfig& c;
  std::vector<Tensor> views;
  std::vector<std::shared_ptr<const void>> owners;

  static const GgufTensor& get(const GgufFile& f, const std::string& gname, const std::string& official) {
    const GgufTensor* g = f.find_tensor(gname);
    if (!g) throw Error(f.path() + ": missing tensor " + gname + " (the official " + official + ")");
    return *g;
  }

  // Dequantises a whole (small) tensor to FP32.
  static std::vector<float> floats(const GgufTensor& g) {
    const auto info = ggml_type_info(static_cast<uint32_t>(g.type));
    if (!info || !info->dequantizable)
      throw Error(g.file + ": tensor " + g.name + " has type " + ggml_type_name(static_cast<uint32_t>(g.type)) + ", which dsv4 cannot decode");
    std::vector<float> v(static_cast<size_t>(g.numel()));
    dequantize_ggml(g.type, g.data, g.numel(), v.data());
    return v;
  }

  void add_owned(const TensorSpec& s, const GgufTensor& g, std::vector<uint8_t> bytes) {
    auto buf = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
    Tensor t;
    t.name = s.name;
    t.dtype = s.dtype;
    t.shape = s.shape;
    t.data = buf->data();
    t.nbytes = buf->size();
    t.file = g.file;
    views.push_back(std::move(t));
    owners.push_back(buf);
  }

  void bind(const GgufFile& f, const TensorSpec& s, std::set<std::string>& used) {
    int64_t expert = -1;
    const std::string gname = gguf_tensor_name(s.name, &expert);
    if (gname.empty()) return;  // a .scale tensor: the GGUF weight carries its own scales
    const GgufTensor& g = get(f, gname, s.name);
    used.insert(gname);
    // The logical [rows, cols] of the official tensor (FP4 stores two values per byte).
    std::vector<int64_t> logical = s.shape;
    if (s.dtype == DType::I8) logical.back() *= 2;
    std::vector<int64_t> want(logical.rbegin(), logical.rend());
    if (expert >= 0) want.push_back(c.n_routed_experts);
    if (g.ne != want)
      throw Error(g.file + ": tensor " + gname + " has shape " + g.ne_str() + ", expected " + ne_string(want) + " (ggml order) for " + s.name);
    const bool matrix = s.dtype == DType::F8_E4M3 || s.dtype == DType::I8 || (s.dtype == DType::BF16 && s.shape.size() == 2);
    if (matrix) {
      const auto info = ggml_type_info(static_cast<uint32_t>(g.type));
      if (!info || !info->dequantizable)
        throw Error(g.file + ": tensor " + gname + " has type " + ggml_type_name(static_cast<uint32_t>(g.type)) +
                    ", which this build of dsv4 cannot decode");
      const int64_t bytes = ggml_row_bytes(g.type, logical[1]) * logical[0];
      Tensor t;
      t.name = s.name;
      t.dtype = DType::U8;
      t.shape = logical;
      t.data = g.data + (expert >= 0 ? expert * bytes : 0);
      t.nbytes = static_cast<size_t>(bytes);
      t.file = g.file;
      t.ggml_type = static_cast<int32_t>(g.type);
      if (s.dtype == DType::BF16 && g.type == GgmlType::BF16) {  // already the official encoding
        t.dtype = DType::BF16;
        t.ggml_type = -1;
      }
      views.push_back(std::move(t));
      return;
    }
    switch (s.dtype) {
      case DType::F32: {
        const std::vector<float> v = floats(g);
        std::vector<uint8_t> bytes(v.size() * 4);
        std::memcpy(bytes.data(), v.data(), bytes.size());
        add_owned(s, g, std::move(bytes));
        return;
      }
      case DType::BF16: {  // norm weights: BF16 in the official layout, F32 in GGUF files
        const std::vector<float> v = floats(g);
        std::vector<uint8_t> bytes(v.size() * 2);
        for (size_t i = 0; i < v.size(); ++i) {
          const uint16_t b = f32_to_bf16(v[i]);
          if (bf16_to_f32(b) != v[i] && !std::isnan(v[i]))
            throw Error(g.file + ": tensor " + gname + " element " + std::to_string(i) + " = " + std::to_string(v[i]) +
                        " is not a BF16 value (dsv4 keeps " + s.name + " in BF16)");
          std::memcpy(bytes.data() + 2 * i, &b, 2);
        }
        add_owned(s, g, std::move(bytes));
        return;
      }
      case DType::I64: {  // tid2eid: I32 ne [k, V] = I64 [V, k]
        if (g.type != GgmlType::I32 && g.type != GgmlType::I64)
          throw Error(g.file + ": tensor " + gname + " has type " + ggml_type_name(static_cast<uint32_t>(g.type)) + ", expected i32");
        const int64_t n = g.numel();
        std::vector<uint8_t> bytes(static_cast<size_t>(n) * 8);
        for (int64_t i = 0; i < n; ++i) {
          int64_t v = 0;
          if (g.type == GgmlType::I32) {
            int32_t x;
            std::memcpy(&x, g.data + 4 * i, 4);
            v = x;
          } else {
            std::memcpy(&v, g.data + 8 * i, 8);
          }
          if (v < 0 || v >= c.n_routed_experts)
            throw Error(g.file + ": tensor " + gname + " holds expert id " + std::to_string(v) + " at token " +
                        std::to_string(i / c.n_activated_experts) + ", outside [0, " + std::to_string(c.n_routed_experts) + ")");
          std::memcpy(bytes.data() + 8 * i, &v, 8);
        }
        add_owned(s, g, std::move(bytes));
        return;
      }
      default:
        throw Error("GGUF binding: unexpected official dtype for " + s.name);
    }
  }
};

}  // namespace

std::shared_ptr<const ModelWeights> load_gguf_model(const std::string& path, const std::string& mtp_path, FileMemory memory) {
  auto main = std::make_shared<GgufFile>(GgufFile::open(path, memory));
  ModelConfig c = gguf_model_config(*main);
  std::shared_ptr<GgufFile> mtp;
  if (!mtp_path.empty()) {
    mtp = std::make_shared<GgufFile>(GgufFile::open(mtp_path, memory));
    const std::string arch = mtp->get_string("general.architecture");
    if (arch != kArch) throw Error(mtp_path + ": general.architecture is '" + arch + "', expected 'deepseek4'");
    const int64_t n = mtp->get_int("deepseek4.nextn_predict_layers", 1);
    if (n != 1) throw Error(mtp_path + ": metadata key 'deepseek4.nextn_predict_layers' = " + std::to_string(n) + ", expected 1");
    c.n_mtp_layers = 1;
    c.compress_ratios.push_back(0);
  }
  Binder b{c, {}, {}};
  std::set<std::string> used_main, used_mtp;
  for (const TensorSpec& s : expected_tensors(c)) {
    const bool is_mtp = s.name.compare(0, 4, "mtp.") == 0;
    b.bind(is_mtp ? *mtp : *main, s, is_mtp ? used_mtp : used_main);
  }
  for (const auto& [name, t] : main->tensors())
    if (!used_main.count(name)) throw Error(t.file + ": unexpected tensor " + name + " (not part of the deepseek4 layout of this config)");
  if (mtp)
    for (const auto& [name, t] : mtp->tensors())
      if (!used_mtp.count(name)) throw Error(t.file + ": unexpected tensor " + name + " (not part of the MTP sidecar layout)");
  std::vector<std::string> files = main->files();
  b.owners.push_back(main);
  if (mtp) {
    files.insert(files.end(), mtp->files().begin(), mtp->files().end());
    b.owners.push_back(mtp);
  }
  auto store = std::make_shared<TensorStore>(TensorStore::from_views(std::move(b.views), std::move(files), std::move(b.owners)));
  return bind_weights(c, store, path);
}

}  // namespace dsv4
