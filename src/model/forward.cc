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
    embed_row(w.embed, tokens[t], D, x0);
    for (int64_t j = 1; j < hc; ++j) std::copy(x0, x0 + D, x0 + j * D);
  }
}

void block_forward(const ModelWeights& w, const BlockWeights& bw, LayerState& ls, const int64_t* tokens, int64_t start,
                   int64_t n, float* X, Numerics nm, Workspace& ws, BlockTrace* trace) {
  const SeqSegment seg{&ls, start, 0, n};
  block_forward_batch(w, bw, &seg, 1, tokens, n, X, nm, ws, trace);
}

void block_forward_batch(const ModelWeights& w, const BlockWeights& bw, const SeqSegment* segs, int64_t n_segs,
                         const int64_t* tokens, int64_t n, float* X, Numerics nm, Workspace& ws, BlockTrace* trace) {
  const ModelConfig& c = w.config;
  const int64_t D = c.dim, hc = c.hc_mult;
  if (trace && n_segs != 1) throw Error("block traces need a single-sequence call");
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
  attention_forward_batch(c, bw.attn, segs, n_segs, xin, n, nm, ws, f, trace ? &trace->attn : nullptr);
  if (trace && trace->attn_out) std::copy(f, f + n * D, trace->attn_out);
  hc_expand(c, f, X, post, comb, n, X2, nm);
  // MoE sublayer (per token: the whole batch at once).
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
  // FP32 GEMM on the up-cast BF16 head (wide accumulation; reference and precise), or int8
  // products on a Q8_0 / MXFP4 head in the int8 mode.
  const WeightMatrix head = matrix_of(w.head);
  linear(head, y, D, n, logits, c.vocab_size, fp32_product_numerics(nm, head), LinearCompute::kFp32);
}

void forward(const ModelWeights& w, SequenceState& st, const int64_t* tokens, int64_t n, const ForwardOutput& out) {
  const ForwardItem item{&st, tokens, n, out};
  forward_batch(w, std::span<const ForwardItem>(&item, 1), st.ws);
}

void forward_batch(const ModelWeights& w, std::span<const ForwardItem> items, Workspace& ws) {
  const ModelConfig& c = w.config;
  const int64_t D = c.dim, hc = c.hc_mult, V = c.vocab_size;
  const int64_t k = static_cast<int64_t>(items.size());
  // Check everything before touching any state.
  if (k == 0) throw Error("forward_batch: no sequences");
  const Numerics nm = items[0].state ? items[0].state->numerics : Numerics::kReference;
  int64_t N = 0, n_logits = 0, logit_rows = 0;
  for (int64_t i = 0; i < k; ++i) {
    const ForwardItem& it = items[static_cast<size_t>(i)];
    auto who = [&] { return k > 1 ? "forward_batch: sequence " + std::to_string(i) + ": " : std::string(); };
    if (!it.state) throw Error(who() + "no state");
    if (it.n < 1) throw Error(who() + "no tokens");
    if (it.state->numerics != nm) throw Error("forward_batch: sequences with different numerics modes in one batch");
    if (it.out.traces && k > 1) throw Error("forward_batch: traces need a batch of one sequence");
    if (it.out.traces && static_cast<int64_t>(it.out.traces->size()) < c.n_layers)
      throw Error(who() + "traces: " + std::to_string(it.out.traces->size()) + " entries for " +
                  std::to_string(c.n_layers) + " layers");
    for (int64_t j = 0; j < i; ++j)
      if (items[static_cast<size_t>(j)].state == it.state)
        throw Error("forward_batch: sequence " + std::to_string(i) + " repeats the state of sequence " + std::to_string(j));
    try {
      check_tokens(c, it.tokens, it.n);
    } catch (const Error& e) {
      throw Error(who() + e.what());
    }
    N += it.n;
    if (it.out.logits) {
      ++n_logits;
      logit_rows += it.out.all_logits ? it.n : 1;
    }
  }
  // The batch's tokens in row order (hash routing reads them).
  const int64_t* tokens = items[0].tokens;
  if (k > 1) {
    int64_t* tb = ws.batch_tokens.get(static_cast<size_t>(N));
    int64_t r = 0;
    for (const ForwardItem& it : items) r = std::copy(it.tokens, it.tokens + it.n, tb + r) - tb;
    tokens = tb;
  }
  if (ws.segs.size() < static_cast<size_t>(k)) ws.segs.resize(static_cast<size_t>(k));
  SeqSegment* segs = ws.segs.data();
  float* X = ws.streams.get(static_cast<size_t>(N * hc * D));
  embed_streams(w, tokens, N, X);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    int64_t row = 0;
    for (int64_t i = 0; i < k; ++i) {
      SequenceState& st = *items[static_cast<size_t>(i)].state;
      segs[i] = SeqSegment{&st.layers[static_cast<size_t>(l)], st.pos, row, items[static_cast<size_t>(i)].n};
      row += items[static_cast<size_t>(i)].n;
    }
    BlockTrace* tr = items[0].out.traces ? &(*items[0].out.traces)[static_cast<size_t>(l)] : nullptr;
    block_forward_batch(w, w.layers[static_cast<size_t>(l)], segs, k, tokens, N, X, nm, ws, tr);
  }
  // Outputs.
  int64_t row = 0;
  for (const ForwardItem& it : items) {
    if (it.out.final_streams) std::copy(X + row * hc * D, X + (row + it.n) * hc * D, it.out.final_streams);
    row += it.n;
  }
  if (n_logits == 1) {
    // One sequence wants logits: its rows are contiguous, write them in place.
    row = 0;
    for (const ForwardItem& it : items) {
      if (it.out.logits) {
        const int64_t r0 = it.out.all_logits ? row : row + it.n - 1;
        head_logits(w, w.hc_head, w.norm, X + r0 * hc * D, it.out.all_logits ? it.n : 1, it.out.logits, nm, ws);
      }
      row += it.n;
    }
  } else if (n_logits > 1) {
    // Gather the rows that need logits, run the head once over all of them, scatter.
    float* hx = ws.head_in.get(static_cast<size_t>(logit_rows * hc * D));
    float* hl = ws.head_out.get(static_cast<size_t>(logit_rows * V));
    int64_t g = 0;
    row = 0;
    for (const ForwardItem& it : items) {
      if (it.out.logits) {
        const int64_t r0 = it.out.all_logits ? row : row + it.n - 1, m = it.out.all_logits ? it.n : 1;
        std::copy(X + r0 * hc * D, X + (r0 + m) * hc * D, hx + g * hc * D);
        g += m;
      }
      row += it.n;
    }
    head_logits(w, w.hc_head, w.norm, hx, logit_rows, hl, nm, ws);
    g = 0;
    for (const ForwardItem& it : items) {
      if (!it.out.logits) continue;
      const int64_t m = it.out.all_logits ? it.n : 1;
      std::copy(hl + g * V, hl + (g + m) * V, it.out.logits);
      g += m;
    }
  }
  for (const ForwardItem& it : items) it.state->pos += it.n;
}

}  // namespace dsv4
