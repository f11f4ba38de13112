// The GGUF copy of tiny-a in llama.cpp's deepseek4 layout (tests/data/gguf, written by
// make_tiny_gguf.py, not by dsv4) against the safetensors checkpoint: same config, every weight
// dequantizes to the same bits, and the same logits (reference mode: identical bits; precise:
// within 1e-5), main model and MTP sidecar.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "golden.h"
#include "model/forward.h"
#include "model/gguf_model.h"
#include "model/mtp.h"

using namespace dsv4;
using namespace dsv4::test;

namespace {

const std::string kGguf = std::string(DSV4_TEST_DATA_DIR) + "/gguf/tiny-a.gguf";
const std::string kMtp = std::string(DSV4_TEST_DATA_DIR) + "/gguf/tiny-a-mtp.gguf";

std::shared_ptr<const ModelWeights> st_model() {
  static auto w = load_model(kTinyA + "/checkpoint");
  return w;
}
std::shared_ptr<const ModelWeights> gguf_model() {
  static auto w = load_gguf_model(kGguf, kMtp);
  return w;
}

TEST(GgufModel, ConfigMatchesConfigJson) {
  const ModelConfig& a = st_model()->config;
  const ModelConfig& b = gguf_model()->config;
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.dim, b.dim);
  EXPECT_EQ(a.n_layers, b.n_layers);
  EXPECT_EQ(a.n_heads, b.n_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.rope_dim, b.rope_dim);
  EXPECT_EQ(a.q_lora_rank, b.q_lora_rank);
  EXPECT_EQ(a.o_groups, b.o_groups);
  EXPECT_EQ(a.o_lora_rank, b.o_lora_rank);
  EXPECT_EQ(a.window, b.window);
  EXPECT_EQ(a.compress_ratios, b.compress_ratios);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.compress_rope_theta, b.compress_rope_theta);
  EXPECT_EQ(a.rope_factor, b.rope_factor);
  EXPECT_EQ(a.original_seq_len, b.original_seq_len);
  EXPECT_EQ(a.beta_fast, b.beta_fast);
  EXPECT_EQ(a.beta_slow, b.beta_slow);
  EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
  EXPECT_EQ(a.index_n_heads, b.index_n_heads);
  EXPECT_EQ(a.index_head_dim, b.index_head_dim);
  EXPECT_EQ(a.index_topk, b.index_topk);
  EXPECT_EQ(a.n_routed_experts, b.n_routed_experts);
  EXPECT_EQ(a.n_shared_experts, b.n_shared_experts);
  EXPECT_EQ(a.n_activated_experts, b.n_activated_experts);
  EXPECT_EQ(a.moe_inter_dim, b.moe_inter_dim);
  EXPECT_EQ(a.n_hash_layers, b.n_hash_layers);
  EXPECT_EQ(a.route_scale, b.route_scale);
  EXPECT_EQ(a.swiglu_limit, b.swiglu_limit);
  EXPECT_EQ(a.hc_mult, b.hc_mult);
  EXPECT_EQ(a.hc_sinkhorn_iters, b.hc_sinkhorn_iters);
  EXPECT_EQ(a.hc_eps, b.hc_eps);  // the F32 key read back as the decimal it was written from
  EXPECT_EQ(a.norm_eps, b.norm_eps);
  EXPECT_EQ(a.n_mtp_layers, b.n_mtp_layers);  // with the sidecar
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_id, b.eos_token_id);
}

TEST(GgufModel, WithoutSidecarHasNoMtp) {
  auto w = load_model(kGguf);  // -m FILE.gguf goes through load_model
  EXPECT_EQ(w->config.n_mtp_layers, 0);
  EXPECT_TRUE(w->mtp.empty());
  EXPECT_EQ(w->config.compress_ratios.size(), static_cast<size_t>(w->config.n_layers));
}

void expect_same_matrix(const WeightMatrix& a, const WeightMatrix& b, const std::string& what) {
  ASSERT_EQ(a.rows, b.rows) << what;
  ASSERT_EQ(a.cols, b.cols) << what;
  std::vector<float> x(static_cast<size_t>(a.rows * a.cols)), y(x.size());
  dequantize_rows(a, 0, a.rows, x.data());
  dequantize_rows(b, 0, b.rows, y.data());
  // Equal values; the only bit difference allowed is the sign of zero (ggml's MXFP4 table maps
  // the E2M1 code for -0 to +0, which changes no product or sum).
  size_t differ = 0;
  for (size_t i = 0; i < x.size(); ++i) differ += !(x[i] == y[i] || (std::isnan(x[i]) && std::isnan(y[i])));
  EXPECT_EQ(differ, 0u) << what;
}

void expect_same_tensor_values(const Tensor* a, const Tensor* b, const std::string& what) {
  ASSERT_NE(a, nullptr) << what;
  ASSERT_NE(b, nullptr) << what;
  EXPECT_EQ(a->dtype, b->dtype) << what;
  EXPECT_EQ(a->shape, b->shape) << what;
  ASSERT_EQ(a->nbytes, b->nbytes) << what;
  EXPECT_EQ(std::memcmp(a->data, b->data, a->nbytes), 0) << what;
}

void expect_same_block(const BlockWeights& a, const BlockWeights& b, const std::string& p) {
  expect_same_matrix(a.attn.wq_a.matrix(), b.attn.wq_a.matrix(), p + "wq_a");
  expect_same_matrix(a.attn.wq_b.matrix(), b.attn.wq_b.matrix(), p + "wq_b");
  expect_same_matrix(a.attn.wkv.matrix(), b.attn.wkv.matrix(), p + "wkv");
  expect_same_matrix(a.attn.wo_a.matrix(), b.attn.wo_a.matrix(), p + "wo_a");
  expect_same_matrix(a.attn.wo_b.matrix(), b.attn.wo_b.matrix(), p + "wo_b");
  expect_same_tensor_values(a.attn.q_norm, b.attn.q_norm, p + "q_norm");
  expect_same_tensor_values(a.attn.kv_norm, b.attn.kv_norm, p + "kv_norm");
  expect_same_tensor_values(a.attn.attn_sink, b.attn.attn_sink, p + "attn_sink");
  expect_same_tensor_values(a.attn_norm, b.attn_norm, p + "attn_norm");
  expect_same_tensor_values(a.ffn_norm, b.ffn_norm, p + "ffn_norm");
  expect_same_tensor_values(a.hc_attn.fn, b.hc_attn.fn, p + "hc_attn_fn");
  expect_same_tensor_values(a.hc_ffn.base, b.hc_ffn.base, p + "hc_ffn_base");
  expect_same_tensor_values(a.hc_ffn.scale, b.hc_ffn.scale, p + "hc_ffn_scale");
  ASSERT_EQ(a.attn.has_compressor, b.attn.has_compressor);
  if (a.attn.has_compressor) {
    expect_same_matrix(a.attn.compressor.wkv.matrix(), b.attn.compressor.wkv.matrix(), p + "compressor.wkv");
    expect_same_tensor_values(a.attn.compressor.ape, b.attn.compressor.ape, p + "compressor.ape");
    expect_same_tensor_values(a.attn.compressor.norm, b.attn.compressor.norm, p + "compressor.norm");
  }
  ASSERT_EQ(a.attn.has_indexer, b.attn.has_indexer);
  if (a.attn.has_indexer) {
    expect_same_matrix(a.attn.indexer.wq_b.matrix(), b.attn.indexer.wq_b.matrix(), p + "indexer.wq_b");
    expect_same_matrix(a.attn.indexer.weights_proj.matrix(), b.attn.indexer.weights_proj.matrix(), p + "indexer.weights_proj");
    expect_same_tensor_values(a.attn.indexer.compressor.ape, b.attn.indexer.compressor.ape, p + "indexer.compressor.ape");
  }
  expect_same_matrix(a.ffn.gate.matrix(), b.ffn.gate.matrix(), p + "gate");
  if (a.ffn.tid2eid) expect_same_tensor_values(a.ffn.tid2eid, b.ffn.tid2eid, p + "tid2eid");
  if (a.ffn.bias) expect_same_tensor_values(a.ffn.bias, b.ffn.bias, p + "bias");
  ASSERT_EQ(a.ffn.experts.size(), b.ffn.experts.size());
  for (size_t e = 0; e < a.ffn.experts.size(); ++e) {
    const std::string q = p + "experts." + std::to_string(e) + ".";
    EXPECT_EQ(b.ffn.experts[e].w1.format, WeightFormat::kGgml);
    EXPECT_EQ(b.ffn.experts[e].w1.ggml_type, GgmlType::MXFP4);
    expect_same_matrix(a.ffn.experts[e].w1.matrix(), b.ffn.experts[e].w1.matrix(), q + "w1");
    expect_same_matrix(a.ffn.experts[e].w2.matrix(), b.ffn.experts[e].w2.matrix(), q + "w2");
    expect_same_matrix(a.ffn.experts[e].w3.matrix(), b.ffn.experts[e].w3.matrix(), q + "w3");
  }
  expect_same_matrix(a.ffn.shared.w1.matrix(), b.ffn.shared.w1.matrix(), p + "shared.w1");
  expect_same_matrix(a.ffn.shared.w2.matrix(), b.ffn.shared.w2.matrix(), p + "shared.w2");
}

TEST(GgufModel, EveryWeightDequantizesToTheSameBits) {
  const ModelWeights& a = *st_model();
  const ModelWeights& b = *gguf_model();
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t l = 0; l < a.layers.size(); ++l) expect_same_block(a.layers[l], b.layers[l], "layer " + std::to_string(l) + " ");
  ASSERT_EQ(a.mtp.size(), b.mtp.size());
  expect_same_block(a.mtp[0].block, b.mtp[0].block, "mtp ");
  expect_same_matrix(a.mtp[0].e_proj.matrix(), b.mtp[0].e_proj.matrix(), "mtp e_proj");
  expect_same_tensor_values(a.mtp[0].enorm, b.mtp[0].enorm, "mtp enorm");
  expect_same_tensor_values(a.mtp[0].hc_head.fn, b.mtp[0].hc_head.fn, "mtp hc_head_fn");
  expect_same_tensor_values(a.embed, b.embed, "embed");
  expect_same_tensor_values(a.head, b.head, "head");
  expect_same_tensor_values(a.norm, b.norm, "norm");
  expect_same_tensor_values(a.hc_head.fn, b.hc_head.fn, "hc_head_fn");
}

struct Logits {
  std::vector<float> main, mtp;
};
Logits run(const ModelWeights& w, Numerics nm, const std::vector<int64_t>& tokens) {
  const ModelConfig& c = w.config;
  const int64_t N = static_cast<int64_t>(tokens.size());
  SequenceState st(c, nm);
  Logits out;
  out.main.resize(static_cast<size_t>(N * c.vocab_size));
  std::vector<float> streams(static_cast<size_t>(N * c.hc_mult * c.dim));
  ForwardOutput fo;
  fo.logits = out.main.data();
  fo.all_logits = true;
  fo.final_streams = streams.data();
  forward(w, st, tokens.data(), N, fo);
  out.mtp.resize(static_cast<size_t>((N - 1) * c.vocab_size));
  mtp_forward(w, st, streams.data(), tokens.data() + 1, N - 1, out.mtp.data(), true, nullptr, nullptr);
  return out;
}

TEST(GgufModel, ReferenceLogitsIdenticalBits) {
  for (const char* seq : {"seq0", "seq1"}) {
    const auto tokens = seq_tokens(seq);
    const Logits a = run(*st_model(), Numerics::kReference, tokens);
    const Logits b = run(*gguf_model(), Numerics::kReference, tokens);
    ASSERT_EQ(a.main.size(), b.main.size());
    EXPECT_EQ(std::memcmp(a.main.data(), b.main.data(), a.main.size() * 4), 0) << seq << " max |diff| " << diff(a.main, b.main).max_abs;
    EXPECT_EQ(std::memcmp(a.mtp.data(), b.mtp.data(), a.mtp.size() * 4), 0) << seq << " mtp max |diff| " << diff(a.mtp, b.mtp).max_abs;
  }
}

TEST(GgufModel, PreciseLogitsWithin1e5) {
  for (const char* seq : {"seq0", "seq1"}) {
    const auto tokens = seq_tokens(seq);
    const Logits a = run(*st_model(), Numerics::kPrecise, tokens);
    const Logits b = run(*gguf_model(), Numerics::kPrecise, tokens);
    const double d = diff(a.main, b.main).max_abs, dm = diff(a.mtp, b.mtp).max_abs;
    std::printf("%s precise: max |diff| %.3g, mtp %.3g\n", seq, d, dm);
    EXPECT_LE(d, 1e-5) << seq;
    EXPECT_LE(dm, 1e-5) << seq;
  }
}

}  // namespace
