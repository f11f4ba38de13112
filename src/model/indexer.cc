#include "model/indexer.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/thread_pool.h"
#include "model/common.h"
#include "model/compressor.h"
#include "ops/linear.h"
#include "ops/quant_sim.h"
#include "ops/rope.h"
#include "ops/topk.h"
#include "ops/vec_kernels.h"

namespace dsv4 {

void indexer_project(const ModelConfig& c, const IndexerWeights& w, int64_t cd, const float* x, const float* qr,
                     int64_t N, Numerics nm, float* q, float* wt, float* A, float* Z) {
  const int64_t HI = c.index_n_heads, cI = c.index_head_dim, D = c.dim;
  linear(w.wq_b.matrix(), qr, c.q_lora_rank, N, q, HI * cI, nm, LinearCompute::kNative);
  // Head weights: weights_proj(x) * (cI^-1/2 * HI^-1/2); the reference multiplies the BF16
  // tensor by the scalar in FP32 and rounds to BF16.
  linear(w.weights_proj.matrix(), x, D, N, wt, HI, nm, LinearCompute::kNative);
  const float wscale = static_cast<float>(std::pow(static_cast<double>(cI), -0.5) * std::pow(static_cast<double>(HI), -0.5));
  for (int64_t i = 0; i < N * HI; ++i) wt[i] = round_ref(wt[i] * wscale, nm);
  compressor_project(w.compressor, D, cd, x, N, A, Z);
}

void indexer_forward(const ModelConfig& c, const IndexerWeights& w, LayerState& ls, const float* x, const float* qr,
                     int64_t start, int64_t n, Numerics nm, Workspace& ws, int64_t* sel, int64_t* count) {
  const int64_t HI = c.index_n_heads, cI = c.index_head_dim, cd = ls.indexer.coff * ls.indexer.d;
  float* q = ws.iq.get(static_cast<size_t>(n * HI * cI));
  float* wt = ws.iw.get(static_cast<size_t>(n * HI));
  float* A = ws.ica.get(static_cast<size_t>(n * cd));
  float* Z = ws.icz.get(static_cast<size_t>(n * cd));
  indexer_project(c, w, cd, x, qr, n, nm, q, wt, A, Z);
  indexer_select(c, w, ls, q, wt, A, Z, start, n, nm, ws, sel, count);
}

void indexer_select(const ModelConfig& c, const IndexerWeights& w, LayerState& ls, float* q, const float* wt,
                    const float* A, const float* Z, int64_t start, int64_t n, Numerics nm, Workspace& ws, int64_t* sel,
                    int64_t* count) {
  const int64_t HI = c.index_n_heads, cI = c.index_head_dim, rd = c.rope_dim, K = c.index_topk;
  const int64_t r = ls.indexer.ratio;
  // Queries: RoPE on the last rd dims, Hadamard, FP4 simulation.
  for (int64_t t = 0; t < n; ++t)
    for (int64_t h = 0; h < HI; ++h) {
      float* qh = q + (t * HI + h) * cI;
      apply_rope(qh + (cI - rd), start + t, ls.rope, false, nm);
      hadamard_rotate(qh, cI);
      round_ref(qh, cI, nm);
      if (is_ref(nm)) fp4_simulate(qh, cI, 32);
    }
  // Keys.
  compressor_update(c, w.compressor, ls.indexer, CompressorKind::kIndexerKeys, ls.rope, A, Z, start, n, nm, ws);
  const int64_t n_keys_max = (start + n) / r;
  float* score = ws.iscore.get(static_cast<size_t>(std::max<int64_t>(n_keys_max, 1)));
  const float* wts = wt;
  const CompressorState& cache = ls.indexer;
  ThreadPool& pool = default_thread_pool();
  for (int64_t t = 0; t < n; ++t) {
    const int64_t p = start + t;
    const int64_t T = (p + 1) / r;  // visible entries
    const float* qt = q + t * HI * cI;
    const float* wtt = wts + t * HI;
    // Scores of keys [i0, i1): one key's dots with all heads at a time (reference: FP4 x FP4
    // products, exact sums in double). Keys are split between threads when there are many.
    auto score_keys = [&](int64_t i0, int64_t i1, int) {
      thread_local std::vector<float> kbuf_v;
      thread_local std::vector<double> dots_v;
      if (kbuf_v.size() < static_cast<size_t>(cI)) kbuf_v.resize(static_cast<size_t>(cI));
      if (dots_v.size() < static_cast<size_t>(HI)) dots_v.resize(static_cast<size_t>(HI));
      float* kbuf = kbuf_v.data();
      double* dots = dots_v.data();
      for (int64_t i = i0; i < i1; ++i) {
        const float* k = cache.entries.f32_row(i);
        if (!k) {
          cache.read_entry(i, kbuf);
          k = kbuf;
        }
        dot_rows_f64(qt, HI, cI, k, cI, dots);
        float s = 0.0f;
        for (int64_t h = 0; h < HI; ++h) {
          float dh = round_ref(static_cast<float>(dots[h]), nm);
          dh = std::max(dh, 0.0f);
          s += round_ref(dh * wtt[h], nm);
        }
        score[i] = round_ref(s, nm);
      }
    };
    if (pool.size() > 1 && T * HI * cI >= (int64_t{1} << 17)) {
      pool.parallel_for(T, 16, score_keys);
    } else {
      score_keys(0, T, 0);
    }
    int64_t* row = sel + t * K;
    int64_t k = topk_indices(score, T, std::min(K, T), row);
    for (int64_t i = k; i < K; ++i) row[i] = -1;
    count[t] = k;
  }
}

}  // namespace dsv4
