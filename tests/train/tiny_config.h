// The tiny V4 config of the trainer's gradient and run tests: every layer type (SWA, CSA with
// indexer, HCA), hash and learned routing, shared expert, MTP.
#pragma once
#include "model/config.h"
#include "model/init.h"

namespace dsv4::train::test {

inline ModelConfig tiny_config() {
  ModelConfig c = init_preset_config("tiny");
  c.vocab_size = 64;
  c.dim = 32;
  c.n_layers = 3;
  c.n_heads = 2;
  c.head_dim = 72;  // 64 no-RoPE dims (the engine's FP8 KV blocks)
  c.rope_dim = 8;
  c.q_lora_rank = 16;
  c.o_groups = 2;
  c.o_lora_rank = 8;
  c.window = 4;
  c.compress_ratios = {0, 4, 8, 0};
  c.index_n_heads = 2;
  c.index_head_dim = 32;
  c.index_topk = 2;
  c.n_routed_experts = 4;
  c.n_activated_experts = 2;
  c.moe_inter_dim = 32;
  c.n_hash_layers = 1;
  c.hc_mult = 2;
  c.n_mtp_layers = 1;
  return c;
}

}  // namespace dsv4::train::test
