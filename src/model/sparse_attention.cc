#include "model/sparse_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "model/common.h"
#include "ops/math.h"
#include "ops/quant_sim.h"
#include "ops/vec_kernels.h"

namespace dsv4 {

void sparse_attention_row(const float* q, int64_t H, int64_t hd, const KvRow* rows, int64_t n_rows,
                          const KvDecoder& dec, const float* sink, float scale, Numerics nm, float* o, double* blk,
                          float* work) {
  constexpr int64_t kBlock = 64;
  const float ninf = -std::numeric_limits<float>::infinity();
  const float* kvb[kBlock];
  // work: [kBlock, hd] decoded rows of the current block, then running max [H] and sum [H].
  float* decoded = work;
  float* mh = work + kBlock * hd;
  float* sumh = mh + H;
  for (int64_t h = 0; h < H; ++h) {
    std::fill(o + h * hd, o + (h + 1) * hd, 0.0f);
    mh[h] = ninf;
    sumh[h] = 0.0f;
  }
  // Blocks outer, heads inner: each compact row is decoded once per block for all heads; the
  // per-head softmax and P.V (vectorised over the dims, each element's sum in list order) are
  // those of a head-by-head loop. Scores of the block for all heads: [H, kBlock].
  thread_local std::vector<float> scores_buf;
  thread_local std::vector<double> dots_buf;
  if (scores_buf.size() < static_cast<size_t>(H * kBlock)) scores_buf.resize(static_cast<size_t>(H * kBlock));
  if (dots_buf.size() < static_cast<size_t>(H)) dots_buf.resize(static_cast<size_t>(H));
  float* scores = scores_buf.data();
  double* dots = dots_buf.data();
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
    for (int64_t j = b0; j < b1; ++j) {
      const float* kv = kvb[j - b0];
      if (!kv) continue;
      dot_rows_f64(q, H, hd, kv, hd, dots);
      for (int64_t h = 0; h < H; ++h) scores[h * kBlock + (j - b0)] = static_cast<float>(dots[h]) * scale;
    }
    for (int64_t h = 0; h < H; ++h) {
      float* oh = o + h * hd;
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
      for (int64_t j = b0; j < b1; ++j) {
        const float* kv = kvb[j - b0];
        if (!kv) continue;
        float p = exp_f32(s[j - b0] - m_new);
        bsum += p;
        axpy_f64(round_ref(p, nm), kv, hd, blk);
      }
      sumh[h] = sumh[h] * alpha + bsum;
      for (int64_t e = 0; e < hd; ++e) oh[e] = oh[e] * alpha + static_cast<float>(blk[e]);
      mh[h] = m_new;
    }
  }
  for (int64_t h = 0; h < H; ++h) {
    float* oh = o + h * hd;
    const float sum = sumh[h] + exp_f32(sink[h] - mh[h]);
    for (int64_t e = 0; e < hd; ++e) oh[e] = round_ref(oh[e] / sum, nm);
  }
}

}  // namespace dsv4
