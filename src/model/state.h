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
// Storage (spec 4.2): reference mode keeps window rows and compressed entries in FlashMLA's
// "MODEL1" layout (E4M3 no-RoPE dims + UE8M0 scales per 64 + BF16 RoPE dims, 584 B for
// d = 512) and indexer keys as FP4 + UE8M0 per 32 (68 B for d = 128). This is lossless: the
// reference already rounds exactly those values onto those grids (fp8_simulate /
// fp4_simulate), so the logits are bit-identical to FP32 storage. Precise mode stores FP32.
// Attention and the indexer decode the rows they read on the fly (a block of 64 rows at a time).
//
// Memory: the rings are fixed-size; entries are allocated in chunks of 1024 rows (no
// reallocation or copy as the context grows; one allocation every 1024 entries). Workspace buffers only grow, so a decode loop with n = 1 stops
// allocating after its first step.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "model/config.h"
#include "ops/linear.h"
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

// Storage format of cached KV rows (spec 4.2).
enum class KvFormat : uint8_t {
  kF32,     // d FP32 values (precise mode: no quantisation by definition)
  kMainFp8, // FlashMLA "MODEL1": (d-rope) E4M3 codes, rope BF16, one UE8M0 scale per 64 no-RoPE
            // values, padded to 8 bytes (d 512, rope 64: 448 + 128 + 7 + 1 = 584 B)
  kIdxFp4,  // d/2 bytes of packed E2M1 (low nibble = even dim) + one UE8M0 scale per 32 (d 128: 68 B)
};
// Cache storage: kAuto = the mode's format (reference: compact, precise: FP32); kF32 forces
// FP32 rows (tests compare the compact cache against it).
enum class KvStorage : uint8_t { kAuto, kF32 };

int64_t kv_entry_bytes(KvFormat f, int64_t d, int64_t rope_dim);
// Encodes a row already on the format's grid (reference mode: fp8_simulate'd no-RoPE dims +
// BF16 RoPE dims, or fp4_simulate'd indexer keys). Lossless: throws Error if decoding would
// not give back the same bits (never for values the reference simulation produces).
void kv_encode(KvFormat f, int64_t d, int64_t rope_dim, const float* x, uint8_t* out);
void kv_decode(KvFormat f, int64_t d, int64_t rope_dim, const uint8_t* in, float* out);

// Append-only rows of one format, allocated in chunks of kChunkEntries rows (no reallocation,
// no copy when growing: a 1M context adds chunks; rows never move).
struct EntryStore {
  static constexpr int64_t kChunkEntries = 1024;
  KvFormat format = KvFormat::kF32;
  int64_t d = 0, rope_dim = 0, row_bytes = 0;
  std::vector<std::unique_ptr<uint8_t[]>> chunks;

  EntryStore() = default;
  EntryStore(EntryStore&&) = default;
  EntryStore& operator=(EntryStore&&) = default;
  EntryStore(const EntryStore& o) { *this = o; }
  EntryStore& operator=(const EntryStore& o);  // deep copy (session checkpoints)

  void init(KvFormat f, int64_t d_, int64_t rope_dim_, int64_t max_rows);
  // Makes room for rows [0, n).
  void reserve(int64_t n);
  uint8_t* row(int64_t i) { return chunks[static_cast<size_t>(i / kChunkEntries)].get() + (i % kChunkEntries) * row_bytes; }
  const uint8_t* row(int64_t i) const {
    return chunks[static_cast<size_t>(i / kChunkEntries)].get() + (i % kChunkEntries) * row_bytes;
  }
  void store(int64_t i, const float* x) { kv_encode(format, d, rope_dim, x, row(i)); }
  void load(int64_t i, float* out) const { kv_decode(format, d, rope_dim, row(i), out); }
  // FP32 rows can be read in place; null for the compact formats.
  const float* f32_row(int64_t i) const {
    return format == KvFormat::kF32 ? reinterpret_cast<const float*>(row(i)) : nullptr;
  }
  int64_t allocated_bytes() const { return static_cast<int64_t>(chunks.size()) * kChunkEntries * row_bytes; }
  // Bytes this store holds once it has room for n rows (the allocation policy above).
  static int64_t bytes_for(int64_t row_bytes, int64_t n) {
    return (n + kChunkEntries - 1) / kChunkEntries * kChunkEntries * row_bytes;
  }
};

struct CompressorState {
  int64_t ratio = 0;     // compression ratio r
  int64_t d = 0;         // entry dim
  int64_t coff = 1;      // 2 for the overlapping (ratio 4) compressor
  int64_t ring_cap = 0;  // >= coff * ratio
  std::vector<float> a, z;        // [ring_cap, coff*d]
  EntryStore entries;             // first n_entries rows valid
  int64_t n_entries = 0;

  void init(int64_t ratio_, int64_t d_, bool overlap, int64_t horizon, KvFormat f, int64_t rope_dim, int64_t max_pos);
  void reset();
  // Decodes entry i (exact copy of what the compressor produced).
  void read_entry(int64_t i, float* out) const { entries.load(i, out); }
  // All n_entries entries decoded, [n_entries, d] (tests, traces).
  std::vector<float> entries_f32() const {
    std::vector<float> v(static_cast<size_t>(n_entries * d));
    for (int64_t i = 0; i < n_entries; ++i) read_entry(i, v.data() + i * d);
    return v;
  }
  // Makes room for `n` entries in total.
  void reserve_entries(int64_t n) { entries.reserve(n); }
  int64_t ring_bytes() const { return static_cast<int64_t>((a.size() + z.size()) * sizeof(float)); }
};

// Bytes of one sequence's cache by component (allocation sizes).
struct KvBytes {
  int64_t window = 0;            // window rings (every layer and the MTP block)
  int64_t csa_entries = 0;       // compressed main entries of CSA layers
  int64_t indexer_keys = 0;      // indexer keys of CSA layers
  int64_t hca_entries = 0;       // compressed entries of HCA layers
  int64_t compressor_state = 0;  // (A, Z) rings of all compressors (FP32)
  int64_t total() const { return window + csa_entries + indexer_keys + hca_entries + compressor_state; }
};

// RoPE of layer `layer` (spec 3.6): compressed layers (CSA / HCA) use compress_rope_theta with
// YaRN, window-only layers rope_theta without.
RopeParams layer_rope_params(const ModelConfig& c, int64_t layer);

struct LayerState {
  int64_t layer = 0;
  int64_t window_cap = 0;
  int64_t head_dim = 0;
  int64_t rope_dim = 0;
  KvFormat window_format = KvFormat::kF32;
  int64_t window_row_bytes = 0;
  RopeTable rope;  // this layer's table (compressed layers: compress_rope_theta + YaRN)
  std::vector<uint8_t> window;  // [window_cap, window_row_bytes]
  bool has_compressor = false;
  CompressorState compressor;  // main compressor (entries = compressed KV)
  bool has_indexer = false;
  CompressorState indexer;     // indexer compressor (entries = indexer keys)

  void init(const ModelConfig& c, int64_t layer_index, int64_t horizon, Numerics nm, KvStorage storage);
  void reset();
  uint8_t* window_row(int64_t pos) { return window.data() + (pos % window_cap) * window_row_bytes; }
  const uint8_t* window_row(int64_t pos) const { return window.data() + (pos % window_cap) * window_row_bytes; }
  void store_window(int64_t pos, const float* kv) { kv_encode(window_format, head_dim, rope_dim, kv, window_row(pos)); }
  void read_window(int64_t pos, float* out) const { kv_decode(window_format, head_dim, rope_dim, window_row(pos), out); }
  void add_bytes(KvBytes& b) const;
};

// One row of an attention index list: an FP32 row (the call's own KV, FP32 caches) or a
// cached row in a compact format; both null = masked.
struct KvRow {
  const float* f = nullptr;
  const uint8_t* q = nullptr;
};

// One sequence's part of a batched call (forward_batch): its layer state, the position of its
// first token, and its rows row0..row0+n-1 in the batch's [N, ...] buffers.
struct SeqSegment {
  LayerState* ls = nullptr;
  int64_t start = 0;
  int64_t row0 = 0;
  int64_t n = 0;
};

// Scratch buffers of one forward call. A sequence state owns one for its own forward() calls;
// a batched forward over several sequences (forward_batch) takes one from its caller (the
// engine's batch stepper, the server scheduler). Buffers only grow, so a steady decode loop
// with a fixed batch shape stops allocating after its first steps.
// One thread's scratch in sparse_attention_row: the decoded compact rows of a block
// [64, hd], scores [heads, 64], dots [heads], one head's P.V over a block [hd], and the
// running max and sum per head.
struct AttentionScratch {
  Scratch decoded, scores, m, sum, dots_f32, pv_f32;  // *_f32: the int8 mode's FP32 core
  std::vector<double> dots, pv;
};

// One expert's share of a MoE call (model/moe.cc): m token rows, at row0 of its group's packed
// inputs, routing weights and outputs; its hidden activations start at `hidden`.
struct ExpertJob {
  int64_t expert = 0;  // n_routed_experts: the shared expert
  int64_t row0 = 0, m = 0, hidden = 0;
};

struct Workspace {
  Scratch x, y, t0, t1, t2, t3, t4, t5, t6, t7, t8;
  Scratch streams, streams2, mixes, pre, post, comb;
  Scratch q, qr, kv, o, u, att_s, att_p, acc;
  Scratch ca, cz, cpool;
  Scratch ica, icz;  // the indexer compressor's projections (live beside ca, cz in a batch)
  Scratch iq, iw, iscore, iqt;  // iqt: one token's indexer queries transposed [cI, HI]
  Scratch gate_s, gate_w, ex_in, ex_h1, ex_h3, ex_out, moe_y;
  ScratchI64 sel, sel_n, gate_idx, ex_rows, list;
  std::vector<ExpertJob> ex_jobs;       // the MoE call's active experts (model/moe.cc)
  std::vector<LinearProduct> products;  // a linear_group's products (the MoE experts')
  std::vector<KvRow> rows;         // attention index list (both null = masked)
  std::vector<uint16_t> normw;     // aligned copy of a misaligned norm weight
  // Batched calls: the batch's token ids, the per-sequence segments of the current layer, the
  // rows that need logits and their logits.
  ScratchI64 batch_tokens;
  std::vector<SeqSegment> segs;
  Scratch head_in, head_out;
  // Per-thread scratch of the per-sequence attention cores, which run in parallel over the
  // sequences of a batch (one entry per thread-pool worker).
  std::vector<Workspace> core;
  // sparse_attention_row's scratch, one per thread-pool worker that shares its heads.
  std::vector<AttentionScratch> attn;
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
  SequenceState(const ModelConfig& c, Numerics numerics, int64_t rewind_horizon = 0,
                KvStorage storage = KvStorage::kAuto);
  // Back to an empty sequence (window KV zero, compressor scores -inf, no entries).
  void reset();
  // Rewinds to the first m tokens (pos - rewind_horizon <= m <= pos); throws Error otherwise.
  void truncate(int64_t m);
  // Rewinds the MTP block alone to its first m positions (mtp_pos - rewind_horizon <= m <=
  // mtp_pos; throws Error otherwise): speculative decoding drops the MTP positions it computed
  // from drafted tokens and recomputes them from the verified ones.
  void truncate_mtp(int64_t m);
  // Bytes allocated now for the cache (window rings, entries, compressor rings).
  KvBytes kv_bytes() const;
};

// Bytes a SequenceState of this config allocates for its cache once it holds `context` tokens
// (the same sizes and chunk policy as the state itself; the MTP block's window included).
KvBytes kv_bytes_at(const ModelConfig& c, Numerics nm, int64_t context, int64_t rewind_horizon = 0);
// DeepSeek-V3.2's cache at `context` tokens for comparison (spec 4.2-4.3): 61 layers x
// (MLA entry in FlashMLA's "V32" FP8 layout, 656 B + DSA indexer key, 132 B) per token.
constexpr int64_t kV32Layers = 61, kV32MlaEntryBytes = 656, kV32IndexerKeyBytes = 132;
inline int64_t v32_kv_bytes(int64_t context) { return kV32Layers * context * (kV32MlaEntryBytes + kV32IndexerKeyBytes); }
// The storage formats a state uses in this numerics mode (reference: compact, lossless;
// precise: FP32).
KvFormat main_kv_format(const ModelConfig& c, Numerics nm);
KvFormat indexer_kv_format(const ModelConfig& c, Numerics nm);

}  // namespace dsv4
