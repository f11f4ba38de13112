#include "model/moe.h"

#include <algorithm>

#include "model/common.h"
#include "ops/linear.h"
#include "ops/math.h"
#include "ops/topk.h"

namespace dsv4 {

namespace {

// h[m, I] = silu(min(a1, lim)) * clamp(a3, -lim, lim) (times the routing weight), BF16 in
// reference mode (the input of w2).
void swiglu(const float* a1, const float* a3, int64_t m, int64_t I, double limit, const float* rw, float* h,
            Numerics nm) {
  const float lim = static_cast<float>(limit);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t i = 0; i < I; ++i) {
      float g = a1[r * I + i], u = a3[r * I + i];
      if (limit > 0) {
        u = std::clamp(u, -lim, lim);
        g = std::min(g, lim);
      }
      float v = silu_f32(g) * u;
      if (rw) v = rw[r] * v;
      h[r * I + i] = round_ref(v, nm);
    }
}

// y[m, D] = w2(swiglu(w1 x, w3 x)).
void expert(const ModelConfig& c, const ExpertWeights& e, const float* x, int64_t m, const float* rw, Numerics nm,
            Workspace& ws, float* y) {
  const int64_t D = c.dim, I = e.w1.out;
  float* a1 = ws.ex_h1.get(static_cast<size_t>(m * I));
  float* a3 = ws.ex_h3.get(static_cast<size_t>(m * I));
  linear(e.w1.matrix(), x, D, m, a1, I, nm, LinearCompute::kNative);
  linear(e.w3.matrix(), x, D, m, a3, I, nm, LinearCompute::kNative);
  swiglu(a1, a3, m, I, c.swiglu_limit, rw, a1, nm);
  linear(e.w2.matrix(), a1, I, m, y, D, nm, LinearCompute::kNative);
}

}  // namespace

void moe_route(const ModelConfig& c, const MoeWeights& w, bool hash, const float* x, const int64_t* tokens, int64_t n,
               float* scores, int64_t* indices, float* weights, Numerics nm) {
  const int64_t E = c.n_routed_experts, k = c.n_activated_experts, D = c.dim;
  // FP32 GEMM on the up-cast BF16 gate weights. kReference + kFp32 = FP32 inputs and output
  // with double accumulation, as the golden data computes FP32 products (reference and
  // precise modes).
  const WeightMatrix gate = w.gate.matrix();
  linear(gate, x, D, n, scores, E, fp32_product_numerics(nm, gate), LinearCompute::kFp32);
  for (int64_t i = 0; i < n * E; ++i) scores[i] = sqrt_f32(softplus_f32(scores[i]));
  float stack_buf[1024];
  std::vector<float> heap_buf;
  float* biased = stack_buf;
  if (!hash && E > 1024) {
    heap_buf.resize(static_cast<size_t>(E));
    biased = heap_buf.data();
  }
  for (int64_t t = 0; t < n; ++t) {
    const float* s = scores + t * E;
    int64_t* idx = indices + t * k;
    if (hash) {
      const int64_t tok = tokens[t];
      if (tok < 0 || tok >= w.tid2eid->dim(0)) throw Error("moe: token id out of range for tid2eid");
      for (int64_t j = 0; j < k; ++j) idx[j] = i64_at(w.tid2eid, tok * k + j);
    } else {
      for (int64_t e = 0; e < E; ++e) biased[e] = s[e] + f32_at(w.bias, e);
      topk_indices(biased, E, k, idx);
    }
    float* g = weights + t * k;
    float sum = 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      g[j] = s[idx[j]];
      sum += g[j];
    }
    const float rs = static_cast<float>(c.route_scale);
    for (int64_t j = 0; j < k; ++j) g[j] = g[j] / sum * rs;
  }
}

void moe_forward(const ModelConfig& c, const MoeWeights& w, bool hash, const float* x, const int64_t* tokens,
                 int64_t n, Numerics nm, Workspace& ws, float* out, MoeTrace* trace) {
  const int64_t E = c.n_routed_experts, k = c.n_activated_experts, D = c.dim;
  float* scores = ws.gate_s.get(static_cast<size_t>(n * E));
  float* gw = ws.gate_w.get(static_cast<size_t>(n * k));
  int64_t* idx = ws.gate_idx.get(static_cast<size_t>(n * k));
  moe_route(c, w, hash, x, tokens, n, scores, idx, gw, nm);
  if (trace) {
    if (trace->indices) std::copy(idx, idx + n * k, trace->indices);
    if (trace->weights) std::copy(gw, gw + n * k, trace->weights);
    if (trace->scores) std::copy(scores, scores + n * E, trace->scores);
  }
  float* y = ws.moe_y.get(static_cast<size_t>(n * D));
  std::fill(y, y + n * D, 0.0f);
  // Bucket the (token, slot) pairs by expert in (token, slot) order: O(n k), not O(E n k).
  int64_t* bucket = ws.list.get(static_cast<size_t>(E + 1 + n * k));
  int64_t* order = bucket + E + 1;
  std::fill(bucket, bucket + E + 1, int64_t{0});
  for (int64_t i = 0; i < n * k; ++i) ++bucket[idx[i] + 1];
  int64_t max_m = n;  // the shared expert takes all n tokens
  for (int64_t e = 0; e < E; ++e) max_m = std::max(max_m, bucket[e + 1]);
  int64_t* rows = ws.ex_rows.get(static_cast<size_t>(max_m));
  float* rw = ws.t8.get(static_cast<size_t>(max_m));
  float* xin = ws.ex_in.get(static_cast<size_t>(max_m * D));
  float* yo = ws.ex_out.get(static_cast<size_t>(max_m * D));
  for (int64_t e = 0; e < E; ++e) bucket[e + 1] += bucket[e];
  for (int64_t i = 0; i < n * k; ++i) order[bucket[idx[i]]++] = i;  // bucket[e] -> end of e
  for (int64_t e = 0; e < E; ++e) {
    const int64_t b0 = e == 0 ? 0 : bucket[e - 1], b1 = bucket[e];
    const int64_t m = b1 - b0;
    for (int64_t r = 0; r < m; ++r) {
      const int64_t i = order[b0 + r], t = i / k;
      rows[r] = t;
      rw[r] = gw[i];
      std::copy(x + t * D, x + (t + 1) * D, xin + r * D);
    }
    if (m == 0) continue;
    expert(c, w.experts[static_cast<size_t>(e)], xin, m, rw, nm, ws, yo);
    for (int64_t r = 0; r < m; ++r)
      for (int64_t d = 0; d < D; ++d) y[rows[r] * D + d] += yo[r * D + d];
  }
  if (w.has_shared) {
    expert(c, w.shared, x, n, nullptr, nm, ws, yo);
    for (int64_t i = 0; i < n * D; ++i) y[i] += yo[i];
  }
  for (int64_t i = 0; i < n * D; ++i) out[i] = round_ref(y[i], nm);
}

}  // namespace dsv4
