#include "model/config.h"

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/file.h"

namespace dsv4 {

using nlohmann::json;

AttentionKind ModelConfig::attention_kind(int64_t layer) const {
  int64_t r = compress_ratio(layer);
  if (r == 0) return AttentionKind::kSlidingWindow;
  if (r == 4) return AttentionKind::kCsa;  // the official code switches overlap + indexer on exactly here
  return AttentionKind::kHca;
}

namespace {

struct Reader {
  const json& j;
  const std::string& src;

  [[noreturn]] void fail(const std::string& field, const std::string& why) const {
    throw Error(src + ": field " + field + ": " + why);
  }
  const json* find(const std::string& key) const {
    auto it = j.find(key);
    return it == j.end() || it->is_null() ? nullptr : &*it;
  }
  int64_t int_req(const std::string& key, int64_t min_value) const {
    const json* v = find(key);
    if (!v) fail(key, "missing");
    return as_int(*v, key, min_value);
  }
  int64_t int_opt(const std::string& key, int64_t def, int64_t min_value) const {
    const json* v = find(key);
    return v ? as_int(*v, key, min_value) : def;
  }
  int64_t as_int(const json& v, const std::string& key, int64_t min_value) const {
    int64_t x = 0;
    if (v.is_number_integer()) {
      x = v.get<int64_t>();
    } else if (v.is_number_float() && v.get<double>() == static_cast<double>(static_cast<int64_t>(v.get<double>()))) {
      x = static_cast<int64_t>(v.get<double>());
    } else {
      fail(key, "expected an integer, got " + v.dump());
    }
    if (x < min_value) fail(key, "must be >= " + std::to_string(min_value) + ", got " + std::to_string(x));
    if (x > (int64_t{1} << 40)) fail(key, "implausibly large value " + std::to_string(x));
    return x;
  }
  double num_opt(const std::string& key, double def) const {
    const json* v = find(key);
    if (!v) return def;
    if (!v->is_number()) fail(key, "expected a number, got " + v->dump());
    return v->get<double>();
  }
};

}  // namespace

ModelConfig parse_config(const std::string& json_text, const std::string& source) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const std::exception& e) {
    throw Error(source + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw Error(source + ": not a JSON object");
  Reader r{j, source};
  if (const json* mt = r.find("model_type"); mt && (!mt->is_string() || mt->get<std::string>() != "deepseek_v4"))
    r.fail("model_type", "expected \"deepseek_v4\", got " + mt->dump());

  ModelConfig c;
  c.vocab_size = r.int_req("vocab_size", 1);
  c.dim = r.int_req("hidden_size", 1);
  c.n_layers = r.int_req("num_hidden_layers", 1);
  c.n_heads = r.int_req("num_attention_heads", 1);
  c.head_dim = r.int_req("head_dim", 1);
  c.rope_dim = r.int_req("qk_rope_head_dim", 0);
  c.q_lora_rank = r.int_req("q_lora_rank", 1);
  c.o_groups = r.int_req("o_groups", 1);
  c.o_lora_rank = r.int_req("o_lora_rank", 1);
  c.window = r.int_req("sliding_window", 1);
  c.rope_theta = r.num_opt("rope_theta", 10000.0);
  c.compress_rope_theta = r.num_opt("compress_rope_theta", 160000.0);
  c.max_position_embeddings = r.int_opt("max_position_embeddings", 0, 0);
  c.index_n_heads = r.int_req("index_n_heads", 1);
  c.index_head_dim = r.int_req("index_head_dim", 1);
  c.index_topk = r.int_req("index_topk", 1);
  c.n_routed_experts = r.int_req("n_routed_experts", 1);
  c.n_shared_experts = r.int_opt("n_shared_experts", 1, 0);
  c.n_activated_experts = r.int_req("num_experts_per_tok", 1);
  c.moe_inter_dim = r.int_req("moe_intermediate_size", 1);
  c.n_hash_layers = r.int_opt("num_hash_layers", 0, 0);
  c.route_scale = r.num_opt("routed_scaling_factor", 1.0);
  c.swiglu_limit = r.num_opt("swiglu_limit", 0.0);
  c.hc_mult = r.int_req("hc_mult", 1);
  c.hc_sinkhorn_iters = r.int_req("hc_sinkhorn_iters", 1);
  c.hc_eps = r.num_opt("hc_eps", 1e-6);
  c.norm_eps = r.num_opt("rms_norm_eps", 1e-6);
  c.n_mtp_layers = r.int_opt("num_nextn_predict_layers", 0, 0);
  c.bos_token_id = r.int_opt("bos_token_id", 0, 0);
  c.eos_token_id = r.int_opt("eos_token_id", 1, 0);

  if (const json* kv = r.find("num_key_value_heads"); kv && r.as_int(*kv, "num_key_value_heads", 1) != 1)
    r.fail("num_key_value_heads", "V4 has one shared K=V head, got " + kv->dump());
  if (const json* sf = r.find("scoring_func"); sf && (!sf->is_string() || sf->get<std::string>() != "sqrtsoftplus"))
    r.fail("scoring_func", "only \"sqrtsoftplus\" is supported, got " + sf->dump());
  if (const json* act = r.find("hidden_act"); act && (!act->is_string() || act->get<std::string>() != "silu"))
    r.fail("hidden_act", "only \"silu\" is supported, got " + act->dump());
  if (const json* ed = r.find("expert_dtype")) {
    if (!ed->is_string()) r.fail("expert_dtype", "expected a string");
    std::string s = ed->get<std::string>();
    if (s == "fp4") c.expert_format = ExpertFormat::kFp4;
    else if (s == "fp8") c.expert_format = ExpertFormat::kFp8;
    else r.fail("expert_dtype", "expected \"fp4\" or \"fp8\", got \"" + s + "\"");
    c.expert_format_given = true;
  }
  if (const json* qc = r.find("quantization_config")) {
    if (!qc->is_object()) r.fail("quantization_config", "expected an object");
    if (auto it = qc->find("weight_block_size"); it != qc->end()) {
      if (!it->is_array() || it->size() != 2 || !(*it)[0].is_number_integer() || (*it)[0] != (*it)[1] || (*it)[0].get<int64_t>() <= 0)
        r.fail("quantization_config.weight_block_size", "expected [b, b] with b > 0, got " + it->dump());
      c.weight_block = (*it)[0].get<int64_t>();
    }
  }
  if (const json* rs = r.find("rope_scaling")) {
    if (!rs->is_object()) r.fail("rope_scaling", "expected an object");
    Reader rr{*rs, source};
    if (const json* ty = rr.find("type"); ty && (!ty->is_string() || ty->get<std::string>() != "yarn"))
      r.fail("rope_scaling.type", "only \"yarn\" is supported, got " + ty->dump());
    c.rope_factor = rr.num_opt("factor", 1.0);
    c.original_seq_len = rr.int_opt("original_max_position_embeddings", 0, 0);
    c.beta_fast = rr.num_opt("beta_fast", 32.0);
    c.beta_slow = rr.num_opt("beta_slow", 1.0);
    if (c.rope_factor <= 0) r.fail("rope_scaling.factor", "must be > 0");
  }
  const json* cr = r.find("compress_ratios");
  if (!cr || !cr->is_array()) r.fail("compress_ratios", "missing or not an array");
  for (const json& v : *cr) c.compress_ratios.push_back(r.as_int(v, "compress_ratios", 0));
  const auto want = static_cast<size_t>(c.n_layers + c.n_mtp_layers);
  if (c.compress_ratios.size() != want)
    r.fail("compress_ratios", "has " + std::to_string(c.compress_ratios.size()) + " entries, expected num_hidden_layers + num_nextn_predict_layers = " + std::to_string(want));
  for (int64_t l = c.n_layers; l < static_cast<int64_t>(want); ++l)
    if (c.compress_ratios[static_cast<size_t>(l)] != 0) r.fail("compress_ratios", "the MTP entries must be 0 (window-only attention)");

  // Cross-field checks: everything the graph relies on.
  if (c.rope_dim % 2 != 0) r.fail("qk_rope_head_dim", "must be even");
  if (c.rope_dim > c.head_dim) r.fail("qk_rope_head_dim", "larger than head_dim");
  if (c.rope_dim > c.index_head_dim) r.fail("qk_rope_head_dim", "larger than index_head_dim");
  if (c.n_heads % c.o_groups != 0) r.fail("o_groups", "must divide num_attention_heads");
  if ((c.index_head_dim & (c.index_head_dim - 1)) != 0) r.fail("index_head_dim", "must be a power of two (Hadamard rotation)");
  if (c.n_activated_experts > c.n_routed_experts) r.fail("num_experts_per_tok", "exceeds n_routed_experts");
  if (c.n_hash_layers > c.n_layers) r.fail("num_hash_layers", "exceeds num_hidden_layers");
  if (c.n_mtp_layers > 1) r.fail("num_nextn_predict_layers", "at most 1 MTP layer is supported");
  if (c.bos_token_id >= c.vocab_size) r.fail("bos_token_id", "outside the vocabulary");
  if (c.eos_token_id >= c.vocab_size) r.fail("eos_token_id", "outside the vocabulary");
  if (c.hc_eps < 0 || c.norm_eps < 0) r.fail("hc_eps", "must be >= 0");
  if (c.swiglu_limit < 0) r.fail("swiglu_limit", "must be >= 0");
  for (int64_t l = 0; l < c.n_layers; ++l) {
    int64_t ratio = c.compress_ratios[static_cast<size_t>(l)];
    if (ratio == 1) r.fail("compress_ratios", "ratio 1 (layer " + std::to_string(l) + ") is not a V4 attention type");
  }
  if (c.nope_dim() % 64 != 0 && c.nope_dim() != 0) {
    // The KV FP8 simulation runs in blocks of 64 over the no-RoPE dims.
    r.fail("head_dim", "head_dim - qk_rope_head_dim must be a multiple of 64");
  }
  if (c.moe_inter_dim % 32 != 0 || c.dim % 32 != 0) r.fail("moe_intermediate_size", "hidden_size and moe_intermediate_size must be multiples of 32 (FP4 scale blocks)");
  if (c.index_head_dim % 32 != 0) r.fail("index_head_dim", "must be a multiple of 32 (FP4 simulation blocks)");
  return c;
}

ModelConfig load_config(const std::string& model_dir) {
  std::string path = model_dir + "/config.json";
  if (!file_exists(path)) throw Error(path + ": missing (a model directory needs config.json)");
  return parse_config(read_file(path), path);
}

ModelConfig official_config(const std::string& name) {
  if (name != "flash" && name != "pro") throw Error("unknown model '" + name + "' (known: flash, pro)");
  const bool pro = name == "pro";
  ModelConfig c;
  c.vocab_size = 129280;
  c.dim = pro ? 7168 : 4096;
  c.n_layers = pro ? 61 : 43;
  c.n_heads = pro ? 128 : 64;
  c.head_dim = 512;
  c.rope_dim = 64;
  c.q_lora_rank = pro ? 1536 : 1024;
  c.o_groups = pro ? 16 : 8;
  c.o_lora_rank = 1024;
  c.window = 128;
  // Flash: [0,0] + [4,128]*20 + [4,0]; Pro: [128,128] + [4,128]*29 + [4,0] (last = MTP).
  c.compress_ratios = pro ? std::vector<int64_t>{128, 128} : std::vector<int64_t>{0, 0};
  for (int i = 0; i < (pro ? 29 : 20); ++i) {
    c.compress_ratios.push_back(4);
    c.compress_ratios.push_back(128);
  }
  c.compress_ratios.push_back(4);
  c.compress_ratios.push_back(0);
  c.rope_theta = 10000.0;
  c.compress_rope_theta = 160000.0;
  c.rope_factor = 16.0;
  c.original_seq_len = 65536;
  c.beta_fast = 32.0;
  c.beta_slow = 1.0;
  c.max_position_embeddings = 1048576;
  c.index_n_heads = 64;
  c.index_head_dim = 128;
  c.index_topk = pro ? 1024 : 512;
  c.n_routed_experts = pro ? 384 : 256;
  c.n_shared_experts = 1;
  c.n_activated_experts = 6;
  c.moe_inter_dim = pro ? 3072 : 2048;
  c.n_hash_layers = 3;
  c.route_scale = pro ? 2.5 : 1.5;
  c.swiglu_limit = 10.0;
  c.expert_format = ExpertFormat::kFp4;
  c.expert_format_given = !pro;
  c.hc_mult = 4;
  c.hc_sinkhorn_iters = 20;
  c.hc_eps = 1e-6;
  c.norm_eps = 1e-6;
  c.weight_block = 128;
  c.n_mtp_layers = 1;
  c.bos_token_id = 0;
  c.eos_token_id = 1;
  return c;
}

}  // namespace dsv4
