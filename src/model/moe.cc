#include "model/moe.h"

#include <algorithm>

#include "backend/thread_pool.h"
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
  // The active experts in index order, then the shared one (all n tokens, the input as it
  // is), in groups of consecutive experts of up to kGroupRows token rows (one expert alone if
  // it has more): a group's w1 / w3 products run as one parallel pass and its w2 products as
  // another (a decode step's experts all fit in one group: two thread barriers per layer
  // instead of three per expert), and the bound keeps the workspace small for long prefill
  // chunks. Each product has the bits linear() gives it alone, and the outputs are added in
  // the same order as one expert after another would add them.
  constexpr int64_t kGroupRows = 256;
  for (int64_t e = 0; e < E; ++e) bucket[e + 1] += bucket[e];
  for (int64_t i = 0; i < n * k; ++i) order[bucket[idx[i]]++] = i;  // bucket[e] -> end of e
  std::vector<ExpertJob>& jobs = ws.ex_jobs;  // kept in the workspace: no allocation per step
  jobs.clear();
  for (int64_t e = 0; e < E; ++e) {
    const int64_t b0 = e == 0 ? 0 : bucket[e - 1], m = bucket[e] - b0;
    if (m > 0) jobs.push_back({e, b0, m, 0});  // row0: the expert's first entry of `order`
  }
  const size_t routed = jobs.size();
  if (w.has_shared) jobs.push_back({E, 0, n, 0});
  auto weights_of = [&](const ExpertJob& jb) -> const ExpertWeights& {
    return jb.expert == E ? w.shared : w.experts[static_cast<size_t>(jb.expert)];
  };
  ThreadPool& pool = default_thread_pool();
  std::vector<LinearProduct>& products = ws.products;
  for (size_t j0 = 0; j0 < jobs.size();) {
    size_t j1 = j0 + 1;
    int64_t rows_in = jobs[j0].m;
    while (j1 < jobs.size() && rows_in + jobs[j1].m <= kGroupRows) rows_in += jobs[j1++].m;
    // Pack the group's routed inputs; each job's rows and hidden activations get their offsets.
    int64_t* rows = ws.ex_rows.get(static_cast<size_t>(rows_in));
    float* rw = ws.t8.get(static_cast<size_t>(rows_in));
    float* xin = ws.ex_in.get(static_cast<size_t>(rows_in * D));
    float* yo = ws.ex_out.get(static_cast<size_t>(rows_in * D));
    int64_t row = 0, hidden = 0;
    products.clear();
    for (size_t j = j0; j < j1; ++j) {
      ExpertJob& jb = jobs[j];
      const int64_t first = jb.row0;
      jb.row0 = row;
      jb.hidden = hidden;
      if (j < routed) {
        for (int64_t r = 0; r < jb.m; ++r) {
          const int64_t i = order[first + r], t = i / k;
          rows[row + r] = t;
          rw[row + r] = gw[i];
          std::copy(x + t * D, x + (t + 1) * D, xin + (row + r) * D);
        }
      }
      row += jb.m;
      hidden += jb.m * weights_of(jb).w1.out;
    }
    float* a1 = ws.ex_h1.get(static_cast<size_t>(hidden));
    float* a3 = ws.ex_h3.get(static_cast<size_t>(hidden));
    for (size_t j = j0; j < j1; ++j) {
      const ExpertJob& jb = jobs[j];
      const int64_t I = weights_of(jb).w1.out;
      const float* in = j < routed ? xin + jb.row0 * D : x;
      products.push_back({weights_of(jb).w1.matrix(), in, D, jb.m, a1 + jb.hidden, I});
      products.push_back({weights_of(jb).w3.matrix(), in, D, jb.m, a3 + jb.hidden, I});
    }
    linear_group(products.data(), static_cast<int64_t>(products.size()), nm, LinearCompute::kNative, pool);
    products.clear();
    for (size_t j = j0; j < j1; ++j) {
      const ExpertJob& jb = jobs[j];
      const int64_t I = weights_of(jb).w1.out;
      float* h = a1 + jb.hidden;
      swiglu(h, a3 + jb.hidden, jb.m, I, c.swiglu_limit, j < routed ? rw + jb.row0 : nullptr, h, nm);
      products.push_back({weights_of(jb).w2.matrix(), h, I, jb.m, yo + jb.row0 * D, D});
    }
    linear_group(products.data(), static_cast<int64_t>(products.size()), nm, LinearCompute::kNative, pool);
    for (size_t j = j0; j < j1; ++j) {
      const ExpertJob& jb = jobs[j];
      const float* yj = yo + jb.row0 * D;
      if (j < routed) {
        for (int64_t r = 0; r < jb.m; ++r)
          for (int64_t d = 0; d < D; ++d) y[rows[jb.row0 + r] * D + d] += yj[r * D + d];
      } else {
        for (int64_t i = 0; i < n * D; ++i) y[i] += yj[i];
      }
    }
    j0 = j1;
  }
  for (int64_t i = 0; i < n * D; ++i) out[i] = round_ref(y[i], nm);
}

}  // namespace dsv4
