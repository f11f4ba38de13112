#include "model/attention.h"

#include <algorithm>
#include <exception>
#include <cmath>
#include <limits>
#include <mutex>
#include <vector>

#include "backend/thread_pool.h"
#include "model/common.h"
#include "model/compressor.h"
#include "model/indexer.h"
#include "ops/linear.h"
#include "ops/math.h"
#include "ops/norm.h"
#include "ops/quant_sim.h"
#include "ops/rope.h"

namespace dsv4 {

namespace {
KvRow window_row(const LayerState& ls, int64_t pos) {
  if (ls.window_format == KvFormat::kF32) return KvRow{reinterpret_cast<const float*>(ls.window_row(pos)), nullptr};
  return KvRow{nullptr, ls.window_row(pos)};
}
KvRow entry_row(const CompressorState& cs, int64_t i) {
  if (const float* f = cs.entries.f32_row(i)) return KvRow{f, nullptr};
  return KvRow{nullptr, cs.entries.row(i)};
}
}  // namespace

void q_head_norm(float* q, int64_t H, int64_t hd, double eps, Numerics nm) {
  for (int64_t h = 0; h < H; ++h) {
    float* qh = q + h * hd;
    if (is_ref(nm)) {
      // q * rsqrt(mean(q^2) + eps) with BF16 tensors: square -> BF16, mean accumulated in FP32
      // and rounded to BF16 once, + eps -> BF16, rsqrt -> BF16, product -> BF16.
      float acc = 0.0f;
      for (int64_t i = 0; i < hd; ++i) acc += round_bf16(qh[i] * qh[i]);
      float mean = round_bf16(acc / static_cast<float>(hd));
      float a = round_bf16(mean + static_cast<float>(eps));
      float rs = round_bf16(rsqrt_f32(a));
      for (int64_t i = 0; i < hd; ++i) qh[i] = round_bf16(qh[i] * rs);
    } else {
      double ss = 0;
      for (int64_t i = 0; i < hd; ++i) ss += static_cast<double>(qh[i]) * qh[i];
      float rs = rsqrt_f32(static_cast<float>(ss / static_cast<double>(hd)) + static_cast<float>(eps));
      for (int64_t i = 0; i < hd; ++i) qh[i] *= rs;
    }
  }
}

namespace {

// Token-independent projections of all N rows: qr [N, ql] (q_norm applied), q [N, H*hd] (head
// norm applied, no RoPE yet), kv [N, hd] (kv_norm applied, no RoPE yet).
void attention_project(const ModelConfig& c, const AttentionWeights& w, const float* x, int64_t N, Numerics nm,
                       Workspace& ws, float* qr, float* q, float* kv) {
  const int64_t D = c.dim, H = c.n_heads, hd = c.head_dim, ql = c.q_lora_rank;
  linear(w.wq_a.matrix(), x, D, N, qr, ql, nm, LinearCompute::kNative);
  rms_norm(qr, N, ql, bf16_data(w.q_norm, ws.normw), c.norm_eps, qr, nm);
  linear(w.wq_b.matrix(), qr, ql, N, q, H * hd, nm, LinearCompute::kNative);
  for (int64_t t = 0; t < N; ++t) q_head_norm(q + t * H * hd, H, hd, c.norm_eps, nm);
  linear(w.wkv.matrix(), x, D, N, kv, hd, nm, LinearCompute::kNative);
  rms_norm(kv, N, hd, bf16_data(w.kv_norm, ws.normw), c.norm_eps, kv, nm);
}

// Rows of the compressed branch's projections (indexer queries / head weights / key
// compressor A, Z; main compressor A, Z), as computed for the whole batch.
struct BranchRows {
  float* iq = nullptr;
  const float* iw = nullptr;
  const float* ia = nullptr;
  const float* iz = nullptr;
  const float* ca = nullptr;
  const float* cz = nullptr;
};

// The per-sequence core of one segment: RoPE at the sequence's positions, the compressed
// branch's state updates (indexer selection, compressor emission), the sparse attention over
// window + compressed rows, inverse RoPE, the window commit. q [n, H*hd], kv [n, hd]
// and br are the segment's rows of the batch's projections (q, kv and the indexer queries are
// finished in place: RoPE etc.); o: [n, H*hd].
void attention_core(const ModelConfig& c, const AttentionWeights& w, LayerState& ls, float* q, float* kv,
                    const BranchRows& br, int64_t start, int64_t n, Numerics nm, Workspace& ws, float* o,
                    AttentionTrace* trace) {
  const int64_t H = c.n_heads, hd = c.head_dim, rd = c.rope_dim, nope = hd - rd, W = c.window;
  for (int64_t t = 0; t < n; ++t) apply_rope_heads(q + t * H * hd + nope, H, hd, start + t, ls.rope, false, nm);
  for (int64_t t = 0; t < n; ++t) {
    float* kt = kv + t * hd;
    apply_rope(kt + nope, start + t, ls.rope, false, nm);
    if (is_ref(nm)) fp8_simulate(kt, nope, 64);
  }
  if (trace && trace->kv) std::copy(kv, kv + n * hd, trace->kv);
  // Compressed branch.
  int64_t* sel = nullptr;
  int64_t* sel_n = nullptr;
  const int64_t K = c.index_topk;
  if (ls.has_indexer) {
    sel = ws.sel.get(static_cast<size_t>(n * K));
    sel_n = ws.sel_n.get(static_cast<size_t>(n));
    indexer_select(c, w.indexer, ls, br.iq, br.iw, br.ia, br.iz, start, n, nm, ws, sel, sel_n);
    if (trace && trace->index_topk) std::copy(sel, sel + n * K, trace->index_topk);
  }
  if (ls.has_compressor)
    compressor_update(c, w.compressor, ls.compressor, CompressorKind::kMainKv, ls.rope, br.ca, br.cz, start, n, nm, ws);
  // Sparse attention. Index list per query as the reference builds it: the window part
  // (positions max(0, p-W+1)..p ascending, -1 padded to the window width: min(n, W) for a
  // prefill from position 0, W otherwise), then the compressed entries.
  const int64_t ww = start == 0 ? std::min(n, W) : W;
  const int64_t ratio = ls.has_compressor ? ls.compressor.ratio : 0;
  const int64_t max_comp = ls.has_indexer ? K : (ratio ? (start + n) / ratio : 0);
  std::vector<KvRow>& rows = ws.rows;
  if (rows.size() < static_cast<size_t>(ww + max_comp)) rows.resize(static_cast<size_t>(ww + max_comp));
  const float scale = static_cast<float>(std::pow(static_cast<double>(hd), -0.5));
  float* sink = ws.att_s.get(static_cast<size_t>(H));
  copy_f32(w.attn_sink, 0, H, sink);
  // Both caches of a layer share one format (window rows and compressed entries).
  const KvDecoder dec{ls.window_format, rd};
  for (int64_t t = 0; t < n; ++t) {
    const int64_t p = start + t;
    int64_t len = 0;
    for (int64_t pp = std::max<int64_t>(0, p - W + 1); pp <= p; ++pp)
      rows[static_cast<size_t>(len++)] = pp >= start ? KvRow{kv + (pp - start) * hd, nullptr} : window_row(ls, pp);
    while (len < ww) rows[static_cast<size_t>(len++)] = KvRow{};
    if (ls.has_indexer) {
      for (int64_t i = 0; i < sel_n[t]; ++i) rows[static_cast<size_t>(len++)] = entry_row(ls.compressor, sel[t * K + i]);
    } else if (ls.has_compressor) {
      const int64_t T = (p + 1) / ratio;
      for (int64_t i = 0; i < T; ++i) rows[static_cast<size_t>(len++)] = entry_row(ls.compressor, i);
    }
    float* ot = o + t * H * hd;
    sparse_attention_row(q + t * H * hd, H, hd, rows.data(), len, dec, sink, scale, nm, ws, ot);
    apply_rope_heads(ot + nope, H, hd, p, ls.rope, true, nm);
  }
  // Commit the window KV of this call (after the attention: a long chunk must not overwrite
  // positions its earlier queries still read).
  for (int64_t t = std::max<int64_t>(0, n - ls.window_cap); t < n; ++t)
    ls.store_window(start + t, kv + t * hd);
}

}  // namespace

void attention_forward_batch(const ModelConfig& c, const AttentionWeights& w, const SeqSegment* segs, int64_t n_segs,
                             const float* x, int64_t N, Numerics nm, Workspace& ws, float* out, AttentionTrace* trace) {
  const int64_t D = c.dim, H = c.n_heads, hd = c.head_dim, ql = c.q_lora_rank, G = c.o_groups, dg = c.o_lora_rank;
  if (trace && n_segs != 1) throw Error("attention traces need a single-sequence call");
  float* qr = ws.qr.get(static_cast<size_t>(N * ql));
  float* q = ws.q.get(static_cast<size_t>(N * H * hd));
  float* kv = ws.kv.get(static_cast<size_t>(N * hd));
  attention_project(c, w, x, N, nm, ws, qr, q, kv);
  // The compressed branch's projections, once for the batch (every sequence has the layer's
  // structure).
  const LayerState& l0 = *segs[0].ls;
  const int64_t HI = c.index_n_heads, cI = c.index_head_dim;
  const int64_t icd = l0.has_indexer ? l0.indexer.coff * l0.indexer.d : 0;
  const int64_t ccd = l0.has_compressor ? l0.compressor.coff * l0.compressor.d : 0;
  float *iq = nullptr, *iw = nullptr, *ia = nullptr, *iz = nullptr, *ca = nullptr, *cz = nullptr;
  if (l0.has_indexer) {
    iq = ws.iq.get(static_cast<size_t>(N * HI * cI));
    iw = ws.iw.get(static_cast<size_t>(N * HI));
    ia = ws.ica.get(static_cast<size_t>(N * icd));
    iz = ws.icz.get(static_cast<size_t>(N * icd));
    indexer_project(c, w.indexer, icd, x, qr, N, nm, iq, iw, ia, iz);
  }
  if (l0.has_compressor) {
    ca = ws.ca.get(static_cast<size_t>(N * ccd));
    cz = ws.cz.get(static_cast<size_t>(N * ccd));
    compressor_project(w.compressor, D, ccd, x, N, ca, cz, nm);
  }
  float* o = ws.o.get(static_cast<size_t>(N * H * hd));
  for (int64_t s = 0; s < n_segs; ++s)
    if (segs[s].ls->has_indexer != l0.has_indexer || segs[s].ls->has_compressor != l0.has_compressor)
      throw Error("attention: sequences of one batch with different layer structures");
  auto core = [&](int64_t s, Workspace& cws) {
    const SeqSegment& g = segs[s];
    const int64_t r = g.row0;
    BranchRows br;
    if (l0.has_indexer) {
      br.iq = iq + r * HI * cI;
      br.iw = iw + r * HI;
      br.ia = ia + r * icd;
      br.iz = iz + r * icd;
    }
    if (l0.has_compressor) {
      br.ca = ca + r * ccd;
      br.cz = cz + r * ccd;
    }
    attention_core(c, w, *g.ls, q + r * H * hd, kv + r * hd, br, g.start, g.n, nm, cws, o + r * H * hd,
                   trace);
  };
  // The cores of different sequences touch disjoint state and rows: run them in parallel,
  // each thread with its own scratch (every sequence's arithmetic is unchanged).
  ThreadPool& pool = default_thread_pool();
  if (n_segs > 1 && pool.size() > 1) {
    if (ws.core.size() < static_cast<size_t>(pool.size())) ws.core.resize(static_cast<size_t>(pool.size()));
    std::mutex err_mu;
    std::exception_ptr err;
    pool.parallel_for(n_segs, 1, [&](int64_t b, int64_t e, int worker) {
      try {
        for (int64_t s = b; s < e; ++s) core(s, ws.core[static_cast<size_t>(worker)]);
      } catch (...) {
        std::lock_guard lk(err_mu);
        if (!err) err = std::current_exception();
      }
    });
    if (err) std::rethrow_exception(err);
  } else {
    for (int64_t s = 0; s < n_segs; ++s) core(s, ws);
  }
  // Grouped output projection: u_g = wo_a_g . o_g (BF16 product), out = wo_b . u.
  float* u = ws.u.get(static_cast<size_t>(N * G * dg));
  const int64_t gin = H * hd / G;
  const WeightMatrix wo_a = w.wo_a.matrix();
  std::vector<LinearProduct>& groups = ws.products;  // one parallel pass for the G products
  groups.clear();
  for (int64_t g = 0; g < G; ++g) groups.push_back({wo_a.row_slice(g * dg, dg), o + g * gin, H * hd, N, u + g * dg, G * dg});
  linear_group(groups.data(), G, nm, LinearCompute::kBf16, default_thread_pool());
  linear(w.wo_b.matrix(), u, G * dg, N, out, D, nm, LinearCompute::kNative);
}

void attention_forward(const ModelConfig& c, const AttentionWeights& w, LayerState& ls, const float* x, int64_t start,
                       int64_t n, Numerics nm, Workspace& ws, float* out, AttentionTrace* trace) {
  const SeqSegment seg{&ls, start, 0, n};
  attention_forward_batch(c, w, &seg, 1, x, n, nm, ws, out, trace);
}

}  // namespace dsv4
