// ModelConfig: every shape and constant of a V4 model, read from the HF config.json
// (field names as in ../shared/spec/v4-architecture.md section 1.1). Nothing is hard-coded.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dsv4 {

enum class AttentionKind : uint8_t {
  kSlidingWindow,  // compress ratio 0: window only
  kCsa,            // compress ratio 4: overlapping compressor + lightning indexer
  kHca,            // any other ratio: non-overlapping compressor, all entries attended
};

enum class ExpertFormat : uint8_t { kFp4, kFp8 };

struct ModelConfig {
  int64_t vocab_size = 0;
  int64_t dim = 0;             // hidden_size
  int64_t n_layers = 0;        // num_hidden_layers (main model, without MTP)
  int64_t n_heads = 0;         // num_attention_heads
  int64_t head_dim = 0;        // K = V latent dim
  int64_t rope_dim = 0;        // qk_rope_head_dim (last dims of each head)
  int64_t q_lora_rank = 0;
  int64_t o_groups = 0;
  int64_t o_lora_rank = 0;
  int64_t window = 0;          // sliding_window
  std::vector<int64_t> compress_ratios;  // n_layers + n_mtp entries
  double rope_theta = 10000.0;
  double compress_rope_theta = 160000.0;
  // YaRN (used by compressed layers only)
  double rope_factor = 1.0;
  int64_t original_seq_len = 0;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  int64_t max_position_embeddings = 0;
  // Lightning indexer
  int64_t index_n_heads = 0;
  int64_t index_head_dim = 0;
  int64_t index_topk = 0;
  // MoE
  int64_t n_routed_experts = 0;
  int64_t n_shared_experts = 0;
  int64_t n_activated_experts = 0;  // num_experts_per_tok
  int64_t moe_inter_dim = 0;        // moe_intermediate_size
  int64_t n_hash_layers = 0;
  double route_scale = 1.0;         // routed_scaling_factor
  double swiglu_limit = 0.0;        // 0 = no clamp
  ExpertFormat expert_format = ExpertFormat::kFp4;
  bool expert_format_given = false;  // expert_dtype present in config.json
  // mHC
  int64_t hc_mult = 0;
  int64_t hc_sinkhorn_iters = 0;
  double hc_eps = 1e-6;
  double norm_eps = 1e-6;  // rms_norm_eps
  // FP8 weight blocks
  int64_t weight_block = 128;
  // MTP
  int64_t n_mtp_layers = 0;  // num_nextn_predict_layers
  int64_t bos_token_id = 0;
  int64_t eos_token_id = 1;

  int64_t compress_ratio(int64_t layer) const { return compress_ratios.at(static_cast<size_t>(layer)); }
  AttentionKind attention_kind(int64_t layer) const;
  int64_t nope_dim() const { return head_dim - rope_dim; }
  int64_t hc_dim() const { return hc_mult * dim; }
  int64_t hc_mix_dim() const { return (2 + hc_mult) * hc_mult; }
  bool is_hash_layer(int64_t layer) const { return layer < n_hash_layers; }
};

// Parses config.json text; `source` names the file in error messages.
ModelConfig parse_config(const std::string& json_text, const std::string& source);
// The shipped configs of the released models (spec 1.1): "flash" (V4-Flash) or "pro"
// (V4-Pro); no weights needed (KV accounting). Throws Error for another name.
ModelConfig official_config(const std::string& name);
// Reads DIR/config.json.
ModelConfig load_config(const std::string& model_dir);

}  // namespace dsv4
