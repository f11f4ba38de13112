// The forward pass (spec 3): embedding -> hc_mult streams -> blocks (mHC around attention and
// MoE) -> hc_head -> final norm -> LM head. One code path for prefill, decode, chunked prefill
// and batches of sequences: forward_batch() appends n_i >= 1 tokens to each of several
// sequences at their own positions; the token-wise ops (embedding, mHC, norms, every linear
// projection, MoE, the head) process all N = sum n_i tokens of the batch at once ([N, ...]
// contiguous buffers), the attention core runs per sequence on its own state. forward() is
// the one-sequence case. Since linear() is batch-invariant, every sequence gets the same bits
// as a call with it alone.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "model/attention.h"
#include "model/moe.h"
#include "model/state.h"
#include "model/weights.h"

namespace dsv4 {

// Optional outputs of one block for tests / debugging (null = not wanted).
struct BlockTrace {
  float* attn_in = nullptr;   // [n, D] hc-collapsed attention input (before attn_norm)
  float* attn_out = nullptr;  // [n, D] attention sublayer output (after wo_b)
  float* ffn_in = nullptr;    // [n, D]
  float* ffn_out = nullptr;   // [n, D] MoE output
  float* out = nullptr;       // [n, hc, D] streams after the block
  AttentionTrace attn;
  MoeTrace moe;
};

// Streams X [n, hc, D] of the token embeddings (hc identical copies).
void embed_streams(const ModelWeights& w, const int64_t* tokens, int64_t n, float* X);

// One block on X [n, hc, D] in place, positions start..start+n-1; tokens feed hash routing.
void block_forward(const ModelWeights& w, const BlockWeights& bw, LayerState& ls, const int64_t* tokens, int64_t start,
                   int64_t n, float* X, Numerics nm, Workspace& ws, BlockTrace* trace);
// The same over the segments of a batch: X [N, hc, D], tokens [N]; segs[i] names each
// sequence's layer state, first position and rows. trace: only with one segment.
void block_forward_batch(const ModelWeights& w, const BlockWeights& bw, const SeqSegment* segs, int64_t n_segs,
                         const int64_t* tokens, int64_t N, float* X, Numerics nm, Workspace& ws, BlockTrace* trace);

// logits [n, V] (FP32) of final streams X [n, hc, D] through hc_head, norm and the LM head.
void head_logits(const ModelWeights& w, const HcWeights& hc, const Tensor* norm, const float* X, int64_t n,
                 float* logits, Numerics nm, Workspace& ws);

struct ForwardOutput {
  float* logits = nullptr;  // [n, V] with all_logits, else [1, V] (the last position); may be null
  bool all_logits = false;
  float* final_streams = nullptr;        // [n, hc, D] streams after the last block (MTP input)
  std::vector<BlockTrace>* traces = nullptr;  // one per main layer
};

// Appends tokens[0..n) at positions state.pos..state.pos+n-1 (n >= 1); state.pos += n.
// Uses the state's own workspace.
void forward(const ModelWeights& w, SequenceState& st, const int64_t* tokens, int64_t n, const ForwardOutput& out);

// One sequence's part of a batched forward.
struct ForwardItem {
  SequenceState* state = nullptr;
  const int64_t* tokens = nullptr;  // n token ids, appended at state->pos
  int64_t n = 0;
  ForwardOutput out;  // traces: only in a batch of one
};

// Appends items[i].tokens to every items[i].state in one pass (continuous batching: decode
// steps of several sequences, prefill chunks, or both mixed). All states must be distinct and
// share one numerics mode. Everything is checked before any state changes (throws Error).
// ws: the batch's scratch (owned by the caller; one per thread of model work).
void forward_batch(const ModelWeights& w, std::span<const ForwardItem> items, Workspace& ws);

// Checks token ids against the vocabulary (throws Error).
void check_tokens(const ModelConfig& c, const int64_t* tokens, int64_t n);

}  // namespace dsv4
