#include "model/indexer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/thread_pool.h"
#include "model/common.h"
#include "model/compressor.h"
#include "ops/formats.h"
#include "ops/linear.h"
#include "ops/quant_sim.h"
#include "ops/rope.h"
#include "ops/topk.h"
#include "ops/vec_kernels.h"

namespace dsv4 {
namespace {

constexpr int64_t kFp4Block = 32;

// Smallest and largest block maximum |x| over the non-zero FP4 blocks of x.
struct BlockRange {
  double lo = 0, hi = 0;  // hi == 0: all zero
};
BlockRange block_range(const float* x, int64_t n) {
  BlockRange r;
  r.lo = std::numeric_limits<double>::infinity();
  for (int64_t b0 = 0; b0 < n; b0 += kFp4Block) {
    float m = 0.0f;
    for (int64_t i = b0; i < std::min(n, b0 + kFp4Block); ++i) m = std::max(m, std::fabs(x[i]));
    if (m > 0.0f) {
      r.lo = std::min(r.lo, static_cast<double>(m));
      r.hi = std::max(r.hi, static_cast<double>(m));
    }
  }
  return r;
}

// The BlockRange bounds of a key stored as kIdxFp4 (d/2 bytes of E2M1 codes, then one UE8M0
// scale per 32), read from its scale bytes instead of scanning the decoded values: a block
// with scale 2^s holds c * 2^s (|c| <= 6, multiples of 1/2), so 6 * 2^s stands in for its
// maximum in fp32_block_sums_exact (at least the maximum, and its values are multiples of
// 2^(s-1) = (6 * 2^s) / 12, which is what the bound there uses). Blocks whose codes are all
// +-0 are skipped as the zero blocks of block_range; a NaN scale (0xFF) fails the test.
BlockRange stored_block_range(const uint8_t* entry, int64_t d) {
  const uint8_t* scales = entry + d / 2;
  int lo = 256, hi = -1;
  for (int64_t b = 0; b * kFp4Block < d; ++b) {
    bool nonzero = false;
    for (int64_t i = b * kFp4Block / 2; i < std::min(d, (b + 1) * kFp4Block) / 2; ++i) nonzero |= (entry[i] & 0x77) != 0;
    if (nonzero) {
      lo = std::min<int>(lo, scales[b]);
      hi = std::max<int>(hi, scales[b]);
    }
  }
  BlockRange r;
  if (hi < 0) return r;  // all zero
  r.lo = 6.0 * static_cast<double>(e8m0_to_f32(static_cast<uint8_t>(lo)));
  r.hi = 6.0 * static_cast<double>(e8m0_to_f32(static_cast<uint8_t>(hi)));
  return r;
}

// FP4 values are c * 2^s with c a multiple of 1/2 up to 6, so a block's maximum M <= 6 * 2^s
// and its values are multiples of 2^(s-1) >= M/12. A q block times a k block gives products
// that are multiples of u = 2^(sq+sk-2) >= Mq*Mk/144 with a sum below 1152 * 2^(sq+sk) = 4608 u, exact in FP32 if u is not below FP32's
// smallest step (2^-149) and nothing overflows; the block sums then add exactly in double
// if their magnitudes span less than 2^40.
bool fp32_block_sums_exact(const BlockRange& q, const BlockRange& k) {
  if (q.hi == 0 || k.hi == 0) return true;  // all products zero
  const double lo = q.lo * k.lo, hi = q.hi * k.hi;
  return lo >= std::ldexp(1.0, -140) && hi <= std::ldexp(1.0, 120) && hi <= lo * std::ldexp(1.0, 40);
}

}  // namespace

void indexer_project(const ModelConfig& c, const IndexerWeights& w, int64_t cd, const float* x, const float* qr,
                     int64_t N, Numerics nm, float* q, float* wt, float* A, float* Z) {
  const int64_t HI = c.index_n_heads, cI = c.index_head_dim, D = c.dim;
  linear(w.wq_b.matrix(), qr, c.q_lora_rank, N, q, HI * cI, nm, LinearCompute::kNative);
  // Head weights: weights_proj(x) * (cI^-1/2 * HI^-1/2); the reference multiplies the BF16
  // tensor by the scalar in FP32 and rounds to BF16.
  linear(w.weights_proj.matrix(), x, D, N, wt, HI, nm, LinearCompute::kNative);
  const float wscale = static_cast<float>(std::pow(static_cast<double>(cI), -0.5) * std::pow(static_cast<double>(HI), -0.5));
  for (int64_t i = 0; i < N * HI; ++i) wt[i] = round_ref(wt[i] * wscale, nm);
  compressor_project(w.compressor, D, cd, x, N, A, Z, nm);
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
  for (int64_t t = 0; t < n; ++t) {
    apply_rope_heads(q + t * HI * cI + (cI - rd), HI, cI, start + t, ls.rope, false, nm);
    for (int64_t h = 0; h < HI; ++h) {
      float* qh = q + (t * HI + h) * cI;
      hadamard_rotate(qh, cI);
      round_ref(qh, cI, nm);
      if (is_ref(nm)) fp4_simulate(qh, cI, 32);
    }
  }
  // Keys.
  compressor_update(c, w.compressor, ls.indexer, CompressorKind::kIndexerKeys, ls.rope, A, Z, start, n, nm, ws);
  const int64_t n_keys_max = (start + n) / r;
  float* score = ws.iscore.get(static_cast<size_t>(std::max<int64_t>(n_keys_max, 1)));
  const float* wts = wt;
  const CompressorState& cache = ls.indexer;
  ThreadPool& pool = default_thread_pool();
  // Reference mode: queries and keys are FP4 values with power-of-two block scales, so a
  // block's 32 products and their sum are exact in FP32 whenever the scales keep them in range
  // (checked per key below); the dots then come from FP32 block sums over the transposed
  // queries (no horizontal sums), bit-identical to the double sums.
  const bool fp4_fast = is_ref(nm) && cI % kFp4Block == 0;
  float* qT = fp4_fast ? ws.iqt.get(static_cast<size_t>(cI * HI)) : nullptr;
  const bool stored_fp4 = cache.entries.format == KvFormat::kIdxFp4;  // key ranges from the scale bytes
  for (int64_t t = 0; t < n; ++t) {
    const int64_t p = start + t;
    const int64_t T = (p + 1) / r;  // visible entries
    const float* qt = q + t * HI * cI;
    const float* wtt = wts + t * HI;
    BlockRange qrange;
    if (fp4_fast) {
      for (int64_t h = 0; h < HI; ++h)
        for (int64_t e = 0; e < cI; ++e) qT[e * HI + h] = qt[h * cI + e];
      qrange = block_range(qt, HI * cI);
    }
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
        if (fp4_fast && fp32_block_sums_exact(qrange, stored_fp4 ? stored_block_range(cache.entries.row(i), cI)
                                                                   : block_range(k, cI))) {
          dot_cols_blocks_f32(qT, HI, k, cI, kFp4Block, dots);
        } else {
          dot_rows_f64(qt, HI, cI, k, cI, dots);
        }
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
