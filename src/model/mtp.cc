#include "model/mtp.h"

#include <algorithm>

#include "model/common.h"
#include "ops/linear.h"
#include "ops/norm.h"

namespace dsv4 {

void mtp_input(const ModelWeights& w, const MtpWeights& m, const float* h, const int64_t* next_tokens, int64_t n,
               float* X, Numerics nm, Workspace& ws) {
  const ModelConfig& c = w.config;
  const int64_t D = c.dim, hc = c.hc_mult;
  float* e = ws.t1.get(static_cast<size_t>(n * D));
  for (int64_t t = 0; t < n; ++t) embed_row(w.embed, next_tokens[t], D, e + t * D);
  rms_norm(e, n, D, bf16_data(m.enorm, ws.normw), c.norm_eps, e, nm);
  float* ep = ws.t2.get(static_cast<size_t>(n * D));
  linear(m.e_proj.matrix(), e, D, n, ep, D, nm, LinearCompute::kNative);
  float* hn = ws.t3.get(static_cast<size_t>(n * hc * D));
  rms_norm(h, n * hc, D, bf16_data(m.hnorm, ws.normw), c.norm_eps, hn, nm);
  linear(m.h_proj.matrix(), hn, D, n * hc, X, D, nm, LinearCompute::kNative);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < hc; ++j) {
      float* x = X + (t * hc + j) * D;
      for (int64_t d = 0; d < D; ++d) x[d] = round_ref(ep[t * D + d] + x[d], nm);
    }
}

void mtp_forward(const ModelWeights& w, SequenceState& st, const float* h, const int64_t* next_tokens, int64_t n,
                 float* logits, bool all_logits, float* out_streams, BlockTrace* trace) {
  const ModelConfig& c = w.config;
  if (w.mtp.empty() || st.mtp.empty()) throw Error("model has no MTP block");
  check_tokens(c, next_tokens, n);
  const int64_t D = c.dim, hc = c.hc_mult;
  const MtpWeights& m = w.mtp[0];
  Workspace& ws = st.ws;
  float* X = ws.t4.get(static_cast<size_t>(n * hc * D));
  mtp_input(w, m, h, next_tokens, n, X, st.numerics, ws);
  block_forward(w, m.block, st.mtp[0], next_tokens, st.mtp_pos, n, X, st.numerics, ws, trace);
  if (out_streams) std::copy(X, X + n * hc * D, out_streams);
  if (logits) {
    if (all_logits)
      head_logits(w, m.hc_head, m.norm, X, n, logits, st.numerics, ws);
    else
      head_logits(w, m.hc_head, m.norm, X + (n - 1) * hc * D, 1, logits, st.numerics, ws);
  }
  st.mtp_pos += n;
}

}  // namespace dsv4
