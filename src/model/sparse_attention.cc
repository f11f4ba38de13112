#include "model/sparse_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/thread_pool.h"
#include "model/common.h"
#include "ops/math.h"
#include "ops/quant_sim.h"
#include "ops/vec_kernels.h"

namespace dsv4 {
namespace {

constexpr int64_t kBlock = 64;  // list positions per online-softmax block

double* sized(std::vector<double>& v, int64_t n) {
  if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
  return v.data();
}

// One block of rows (kvb[j] null: masked) for nh heads in the FP32 core (precise, int8): the dots
// of all heads with the valid rows in 4 x 4 tiles, each head's online-softmax step as in
// attend_heads (same operations on the same scores), P.V of all heads in one pass.
void attend_block_f32(const float* q, int64_t nh, int64_t hd, const float* const* kvb, int64_t n, float scale, float* tile,
                      float* pv, float* alpha_h, float* mh, float* sumh, float* o) {
  const float* rows[kBlock];
  int64_t cnt = 0;
  for (int64_t j = 0; j < n; ++j) {
    if (kvb[j]) rows[cnt++] = kvb[j];
  }
  dot_tile_f32(q, nh, hd, rows, cnt, hd, tile, kBlock);
  for (int64_t h = 0; h < nh; ++h) {
    float* s = tile + h * kBlock;
    float bm = -std::numeric_limits<float>::infinity();
    for (int64_t c = 0; c < cnt; ++c) {
      s[c] *= scale;
      bm = std::max(bm, s[c]);
    }
    const float m_new = std::max(mh[h], bm);
    alpha_h[h] = exp_f32(mh[h] - m_new);  // 0 for the first block
    float bsum = 0.0f;
    for (int64_t c = 0; c < cnt; ++c) {
      s[c] = exp_f32(s[c] - m_new);
      bsum += s[c];
    }
    sumh[h] = sumh[h] * alpha_h[h] + bsum;
    mh[h] = m_new;
  }
  std::fill(pv, pv + nh * hd, 0.0f);
  axpy_heads_f32(tile, nh, kBlock, rows, cnt, hd, pv, hd);
  for (int64_t h = 0; h < nh; ++h) {
    for (int64_t e = 0; e < hd; ++e) o[h * hd + e] = o[h * hd + e] * alpha_h[h] + pv[h * hd + e];
  }
}

// Heads [h0, h1) of sparse_attention_row. Blocks outer, heads inner: each compact row is
// decoded once per block for these heads; the per-head softmax and P.V (vectorised over the
// dims, each element's sum in list order) are those of a head-by-head loop, so the result of
// a head does not depend on which other heads share the call. The precise and int8 modes sum
// the dots and P.V in FP32 lanes (vec_kernels' *_f32), reference mode in double.
void attend_heads(const float* q, int64_t h0, int64_t h1, int64_t hd, const KvRow* rows, int64_t n_rows,
                  const KvDecoder& dec, const float* sink, float scale, Numerics nm, AttentionScratch& sc, float* o) {
  const float ninf = -std::numeric_limits<float>::infinity();
  const int64_t nh = h1 - h0;
  float* decoded = sc.decoded.get(static_cast<size_t>(kBlock * hd));
  float* scores = sc.scores.get(static_cast<size_t>(nh * kBlock));
  double* dots = sized(sc.dots, nh);
  double* blk = sized(sc.pv, hd);
  const bool f32 = nm != Numerics::kReference;
  // The FP32 path's tiles: dots [nh, kBlock] of the valid rows, then their softmax weights;
  // P.V of all heads [nh, hd]; each head's rescale factor.
  float* tile = f32 ? sc.dots_f32.get(static_cast<size_t>(nh * kBlock)) : nullptr;
  float* pv_all = f32 ? sc.pv_f32.get(static_cast<size_t>(nh * hd + nh)) : nullptr;
  float* alpha_h = f32 ? pv_all + nh * hd : nullptr;
  float* mh = sc.m.get(static_cast<size_t>(nh));
  float* sumh = sc.sum.get(static_cast<size_t>(nh));
  const float* kvb[kBlock];
  for (int64_t h = 0; h < nh; ++h) {
    std::fill(o + (h0 + h) * hd, o + (h0 + h + 1) * hd, 0.0f);
    mh[h] = ninf;
    sumh[h] = 0.0f;
  }
  for (int64_t b0 = 0; b0 < n_rows; b0 += kBlock) {
    const int64_t b1 = std::min(n_rows, b0 + kBlock);
    bool any = false;
    for (int64_t j = b0; j < b1; ++j) {
      const KvRow& r = rows[j];
      if (r.f) {
        kvb[j - b0] = r.f;
      } else if (r.q) {
        float* dst = decoded + (j - b0) * hd;
        kv_decode(dec.format, hd, dec.rope_dim, r.q, dst);
        kvb[j - b0] = dst;
      } else {
        kvb[j - b0] = nullptr;
        continue;
      }
      any = true;
    }
    if (!any) continue;
    if (f32) {
      attend_block_f32(q + h0 * hd, nh, hd, kvb, b1 - b0, scale, tile, pv_all, alpha_h, mh, sumh, o + h0 * hd);
      continue;
    }
    for (int64_t j = b0; j < b1; ++j) {
      const float* kv = kvb[j - b0];
      if (!kv) continue;
      dot_rows_f64(q + h0 * hd, nh, hd, kv, hd, dots);
      for (int64_t h = 0; h < nh; ++h) scores[h * kBlock + (j - b0)] = static_cast<float>(dots[h]) * scale;
    }
    for (int64_t h = 0; h < nh; ++h) {
      float* oh = o + (h0 + h) * hd;
      float* s = scores + h * kBlock;
      float bm = ninf;
      for (int64_t j = b0; j < b1; ++j) {
        if (!kvb[j - b0]) {
          s[j - b0] = ninf;
          continue;
        }
        bm = std::max(bm, s[j - b0]);
      }
      const float m = mh[h];
      const float m_new = std::max(m, bm);
      const float alpha = exp_f32(m - m_new);  // 0 for the first block
      float bsum = 0.0f;
      std::fill(blk, blk + hd, 0.0);
      double pj[kBlock];
      const float* rows_j[kBlock];
      int64_t cnt = 0;
      for (int64_t j = b0; j < b1; ++j) {
        const float* kv = kvb[j - b0];
        if (!kv) continue;
        float p = exp_f32(s[j - b0] - m_new);
        bsum += p;
        pj[cnt] = round_ref(p, nm);
        rows_j[cnt++] = kv;
      }
      axpy_rows_f64(pj, rows_j, cnt, hd, blk);
      sumh[h] = sumh[h] * alpha + bsum;
      for (int64_t e = 0; e < hd; ++e) oh[e] = oh[e] * alpha + static_cast<float>(blk[e]);
      mh[h] = m_new;
    }
  }
  for (int64_t h = 0; h < nh; ++h) {
    float* oh = o + (h0 + h) * hd;
    const float sum = sumh[h] + exp_f32(sink[h0 + h] - mh[h]);
    for (int64_t e = 0; e < hd; ++e) oh[e] = round_ref(oh[e] / sum, nm);
  }
}

}  // namespace

void sparse_attention_row(const float* q, int64_t H, int64_t hd, const KvRow* rows, int64_t n_rows,
                          const KvDecoder& dec, const float* sink, float scale, Numerics nm, Workspace& ws, float* o) {
  // Heads are split between the threads (each head's result is the same whatever the split);
  // short lists stay on the calling thread, where a barrier would cost more than the work.
  // Each worker takes its own scratch (a nested call runs inline as worker 0).
  ThreadPool& pool = default_thread_pool();
  const bool split = pool.size() > 1 && H >= 2 && n_rows * H * hd >= (int64_t{1} << 16);
  const size_t workers = split ? static_cast<size_t>(pool.size()) : 1;
  if (ws.attn.size() < workers) ws.attn.resize(workers);
  if (!split) {
    attend_heads(q, 0, H, hd, rows, n_rows, dec, sink, scale, nm, ws.attn[0], o);
    return;
  }
  pool.parallel_for(H, 1, [&](int64_t h0, int64_t h1, int worker) {
    if (h1 > h0) attend_heads(q, h0, h1, hd, rows, n_rows, dec, sink, scale, nm, ws.attn[static_cast<size_t>(worker)], o);
  });
}

}  // namespace dsv4
