#include "model/forward.h"

#include <algorithm>
#include <string>

#include "model/common.h"
#include "model/mhc.h"
#include "ops/linear.h"
#include "ops/norm.h"

namespace dsv4 {

void check_tokens(const ModelConfig& c, const int64_t* tokens, int64_t n) {
  if (n < 1) throw Error("no tokens");
  for (int64_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= c.vocab_size)
      throw Error("token id " + std::to_string(tokens[i]) + " at index " + std::to_string(i) + " out of range [0, " +
                  std::to_string(c.vocab_size) + ")");
}

void embed_streams(const ModelWeights& w, const int64_t* tokens, int64_t n, float* X) {
  const ModelConfig& c = w.config;
  const int64_t D = c.dim, hc = c.hc_mult;
  for (int64_t t = 0; t < n; ++t) {
    float* x0 = X + t * hc * D;
    bf16_row(w.embed, tokens[t], D, x0);
    for (int64_t j = 1; j < hc; ++j) std::copy(x0, x0 + D, x0 + j * D);
  }
}

void block_forward(const ModelWeights& w, const BlockWeights& bw, LayerState& ls, const int64_t* tokens, int64_t start,
                   int64_t n, float* X, Numerics nm, Workspace& ws, BlockTrace* trace) {
  const ModelConfig& c = w.config;
  const int64_t D = c.dim, hc = c.hc_mult;
  float* pre = ws.pre.get(static_cast<size_t>(n * hc));
  float* post = ws.post.get(static_cast<size_t>(n * hc));
  float* comb = ws.comb.get(static_cast<size_t>(n * hc * hc));
  float* xin = ws.x.get(static_cast<size_t>(n * D));
  float* f = ws.y.get(static_cast<size_t>(n * D));
  float* X2 = ws.streams2.get(static_cast<size_t>(n * hc * D));
  // Attention sublayer.
  hc_coeffs(c, bw.hc_attn, X, n, pre, post, comb, ws);
  hc_collapse(c, X, pre, n, xin, nm);
  if (trace && trace->attn_in) std::copy(xin, xin + n * D, trace->attn_in);
  rms_norm(xin, n, D, bf16_data(bw.attn_norm, ws.normw), c.norm_eps, xin, nm);
  attention_forward(c, bw.attn, ls, xin, start, n, nm, ws, f, trace ? &trace->attn : nullptr);
  if (trace && trace->attn_out) std::copy(f, f + n * D, trace->attn_out);
  hc_expand(c, f, X, post, comb, n, X2, nm);
  // MoE sublayer.
  hc_coeffs(c, bw.hc_ffn, X2, n, pre, post, comb, ws);
  hc_collapse(c, X2, pre, n, xin, nm);
  if (trace && trace->ffn_in) std::copy(xin, xin + n * D, trace->ffn_in);
  rms_norm(xin, n, D, bf16_data(bw.ffn_norm, ws.normw), c.norm_eps, xin, nm);
  moe_forward(c, bw.ffn, c.is_hash_layer(bw.layer), xin, tokens, n, nm, ws, f, trace ? &trace->moe : nullptr);
  if (trace && trace->ffn_out) std::copy(f, f + n * D, trace->ffn_out);
  hc_expand(c, f, X2, post, comb, n, X, nm);
  if (trace && trace->out) std::copy(X, X + n * hc * D, trace->out);
}

void head_logits(const ModelWeights& w, const HcWeights& hc, const Tensor* norm, const float* X, int64_t n,
                 float* logits, Numerics nm, Workspace& ws) {
  const ModelConfig& c = w.config;
  const int64_t D = c.dim;
  float* y = ws.t0.get(static_cast<size_t>(n * D));
  hc_head(c, hc, X, n, y, nm, ws);
  rms_norm(y, n, D, bf16_data(norm, ws.normw), c.norm_eps, y, nm);
  // FP32 GEMM on the up-cast BF16 head (wide accumulation; both modes).
  linear(matrix_of(w.head), y, D, n, logits, c.vocab_size, Numerics::kReference, LinearCompute::kFp32);
}

void forward(const ModelWeights& w, SequenceState& st, const int64_t* tokens, int64_t n, const ForwardOutput& out) {
  const ModelConfig& c = w.config;
  check_tokens(c, tokens, n);
  const int64_t D = c.dim, hc = c.hc_mult;
  Workspace& ws = st.ws;
  float* X = ws.streams.get(static_cast<size_t>(n * hc * D));
  embed_streams(w, tokens, n, X);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    BlockTrace* tr = out.traces ? &(*out.traces)[static_cast<size_t>(l)] : nullptr;
    block_forward(w, w.layers[static_cast<size_t>(l)], st.layers[static_cast<size_t>(l)], tokens, st.pos, n, X,
                  st.numerics, ws, tr);
  }
  if (out.final_streams) std::copy(X, X + n * hc * D, out.final_streams);
  if (out.logits) {
    if (out.all_logits)
      head_logits(w, w.hc_head, w.norm, X, n, out.logits, st.numerics, ws);
    else
      head_logits(w, w.hc_head, w.norm, X + (n - 1) * hc * D, 1, out.logits, st.numerics, ws);
  }
  st.pos += n;
}

}  // namespace dsv4
