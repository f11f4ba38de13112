// Attention sublayer (spec 3.3): low-rank query with per-head unweighted RMS norm, one shared
// K = V latent (MQA), partial interleaved RoPE, sliding window + compressed entries (CSA via the
// lightning indexer, HCA all entries), attention sink, inverse RoPE on the output, grouped
// low-rank output projection.
#pragma once
#include <cstdint>

#include "model/config.h"
#include "model/state.h"
#include "model/sparse_attention.h"
#include "model/weights.h"

namespace dsv4 {

// Optional per-call outputs for tests and debugging (null = not wanted).
struct AttentionTrace {
  float* kv = nullptr;          // [n, head_dim] window KV entries of the call's tokens
  int64_t* index_topk = nullptr;  // [n, index_topk] indexer selections (CSA), -1 padded
};

// x: attn_norm output [n, D] at positions start..start+n-1; out: [n, D].
// Reads the state for positions < start, appends the call's positions.
// The one-sequence case of attention_forward_batch.
void attention_forward(const ModelConfig& c, const AttentionWeights& w, LayerState& ls, const float* x, int64_t start,
                       int64_t n, Numerics nm, Workspace& ws, float* out, AttentionTrace* trace);

// Several sequences at once: x [N, D] holds the rows of every segment (segs[i].row0 ..
// row0+n-1, N = the sum of the segments' n); out [N, D]. The token-independent projections
// (wq_a, q_norm, wq_b, q head norm, wkv, kv_norm, wo_a, wo_b) run once over all N rows; RoPE,
// the indexer, the compressors, the window and the sparse attention run per segment at the
// sequence's own positions against its own state. Every row gets the bits a call with its
// sequence alone gives (linear() is batch-invariant). trace: only with one segment.
void attention_forward_batch(const ModelConfig& c, const AttentionWeights& w, const SeqSegment* segs, int64_t n_segs,
                             const float* x, int64_t N, Numerics nm, Workspace& ws, float* out, AttentionTrace* trace);

// Per-head unweighted RMS norm of q [H, hd] in place (reference: the BF16 tensor ops of the
// official code).
void q_head_norm(float* q, int64_t H, int64_t hd, double eps, Numerics nm);

}  // namespace dsv4
