#include "model/sparse_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "model/common.h"
#include "ops/math.h"
#include "ops/quant_sim.h"

namespace dsv4 {

void sparse_attention_row(const float* q, int64_t H, int64_t hd, const KvRow* rows, int64_t n_rows,
                          const KvDecoder& dec, const float* sink, float scale, Numerics nm, float* o, double* blk,
                          float* work) {
  constexpr int64_t kBlock = 64;
  const float ninf = -std::numeric_limits<float>::infinity();
  float s[kBlock];
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
  // per-head arithmetic (and its order) is that of a head-by-head loop.
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
    for (int64_t h = 0; h < H; ++h) {
      const float* qh = q + h * hd;
      float* oh = o + h * hd;
      float bm = ninf;
      for (int64_t j = b0; j < b1; ++j) {
        const float* kv = kvb[j - b0];
        if (!kv) {
          s[j - b0] = ninf;
          continue;
        }
        double dot = 0;
        for (int64_t e = 0; e < hd; ++e) dot += static_cast<double>(qh[e]) * kv[e];
        s[j - b0] = static_cast<float>(dot) * scale;
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
        const double pv = round_ref(p, nm);
        for (int64_t e = 0; e < hd; ++e) blk[e] += pv * kv[e];
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
