// Per-sequence state of the forward pass (spec 4.1, 5): everything that depends on the tokens
// seen so far, separate from the shared read-only ModelWeights.
//
// Layout, per block (main layers and the MTP block):
//   * window ring   [window_cap, head_dim]: KV of position p in slot p % window_cap;
//   * per compressor (main: d = head_dim, indexer: d = index_head_dim):
//       - (A, Z) ring [ring_cap, coff*d] each: the compressor projections of position p
//         (Z already includes ape[p % ratio]) in slot p % ring_cap. The overlapping CSA
//         compressor needs the previous and the current window (coff*ratio = 8 positions),
//         the heavy one the current window (ratio positions). Emission of entry i reads the
//         positions it pools directly by position, so prefill, decode and chunked prefill are
//         the same state machine (a generalisation of the reference's kv_state/score_state
//         shifting, spec 5.1-5.2). Slots of positions < 0 are never read (score -inf).
//       - entries [n_entries, d]: emitted compressed entries (append-only; entry i pools the
//         window ending at position ratio*i + ratio - 1).
//
// Rewind (SequenceState::truncate): construct the state with `rewind_horizon` H > 0. The
// rings then keep H more positions than the forward needs (window_cap = window + H,
// ring_cap = coff*ratio + H), so for any m >= pos - H the ring slots of positions
// max(0, m - window) .. m - 1 and of the open compressor windows (positions >=
// ratio*floor(m/ratio) - (coff-1)*ratio) are still intact. truncate(m) sets pos = m and cuts
// every entries array to floor(m / ratio) rows (entries are causal: entry i only depends on
// positions <= ratio*i + ratio - 1 < m). Slots of positions >= m hold stale data but are
// always rewritten before they are read. No recomputation is needed: the next forward sees
// exactly the state a fresh prefill of m tokens leaves. The MTP block state is cut to the
// MTP positions that only use tokens < m.
//
// Memory: the rings are fixed-size; entries grow geometrically (amortised, no allocation
// on most decode steps). Workspace buffers only grow, so a decode loop with n = 1 stops
// allocating after its first step.
#pragma once
#include <cstdint>
#include <vector>

#include "model/config.h"
#include "ops/numerics.h"
#include "ops/rope.h"

namespace dsv4 {

// A growable float buffer that never shrinks (reused scratch).
struct Scratch {
  std::vector<float> v;
  float* get(size_t n) {
    if (v.size() < n) v.resize(n);
    return v.data();
  }
};
struct ScratchI64 {
  std::vector<int64_t> v;
  int64_t* get(size_t n) {
    if (v.size() < n) v.resize(n);
    return v.data();
  }
};

struct CompressorState {
  int64_t ratio = 0;     // compression ratio r
  int64_t d = 0;         // entry dim
  int64_t coff = 1;      // 2 for the overlapping (ratio 4) compressor
  int64_t ring_cap = 0;  // >= coff * ratio
  std::vector<float> a, z;        // [ring_cap, coff*d]
  std::vector<float> entries;     // [capacity, d], first n_entries rows valid
  int64_t n_entries = 0;

  void init(int64_t ratio_, int64_t d_, bool overlap, int64_t horizon);
  void reset();
  float* entry(int64_t i) { return entries.data() + i * d; }
  const float* entry(int64_t i) const { return entries.data() + i * d; }
  // Makes room for `n` entries in total.
  void reserve_entries(int64_t n);
};

struct LayerState {
  int64_t layer = 0;
  int64_t window_cap = 0;
  int64_t head_dim = 0;
  RopeTable rope;  // this layer's table (compressed layers: compress_rope_theta + YaRN)
  std::vector<float> window;  // [window_cap, head_dim]
  bool has_compressor = false;
  CompressorState compressor;  // main compressor (entries = compressed KV)
  bool has_indexer = false;
  CompressorState indexer;     // indexer compressor (entries = indexer keys)

  void init(const ModelConfig& c, int64_t layer_index, int64_t horizon);
  void reset();
  float* window_slot(int64_t pos) { return window.data() + (pos % window_cap) * head_dim; }
  const float* window_slot(int64_t pos) const { return window.data() + (pos % window_cap) * head_dim; }
};

// Scratch buffers of one forward call, owned by the sequence state.
struct Workspace {
  Scratch x, y, t0, t1, t2, t3, t4, t5, t6, t7, t8;
  Scratch streams, streams2, mixes, pre, post, comb;
  Scratch q, qr, kv, o, u, att_s, att_p, acc;
  Scratch ca, cz, cpool;
  Scratch iq, iw, iscore;
  Scratch gate_s, gate_w, ex_in, ex_h1, ex_h3, ex_out, moe_y;
  ScratchI64 sel, sel_n, gate_idx, ex_rows, list;
  std::vector<const float*> rows;  // attention index list (null = masked)
  std::vector<double> dacc;        // attention block accumulator
};

struct SequenceState {
  Numerics numerics = Numerics::kReference;
  int64_t pos = 0;      // number of tokens processed by the main model
  int64_t mtp_pos = 0;  // number of positions processed by the MTP block
  int64_t rewind_horizon = 0;
  std::vector<LayerState> layers;  // main layers
  std::vector<LayerState> mtp;     // MTP blocks
  Workspace ws;

  SequenceState() = default;
  SequenceState(const ModelConfig& c, Numerics numerics, int64_t rewind_horizon = 0);
  // Back to an empty sequence (window KV zero, compressor scores -inf, no entries).
  void reset();
  // Rewinds to the first m tokens (pos - rewind_horizon <= m <= pos); throws Error otherwise.
  void truncate(int64_t m);
};

}  // namespace dsv4
