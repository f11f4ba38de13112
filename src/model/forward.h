// The forward pass (spec 3): embedding -> hc_mult streams -> blocks (mHC around attention and
// MoE) -> hc_head -> final norm -> LM head. One code path for prefill, decode and chunked
// prefill: forward() appends n >= 1 tokens at state.pos; every op processes all n tokens
// ([n, ...] contiguous buffers).
#pragma once
#include <cstdint>
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
  AttentionTrace attn;
  MoeTrace moe;
};

// Streams X [n, hc, D] of the token embeddings (hc identical copies).
void embed_streams(const ModelWeights& w, const int64_t* tokens, int64_t n, float* X);

// One block on X [n, hc, D] in place, positions start..start+n-1; tokens feed hash routing.
void block_forward(const ModelWeights& w, const BlockWeights& bw, LayerState& ls, const int64_t* tokens, int64_t start,
                   int64_t n, float* X, Numerics nm, Workspace& ws, BlockTrace* trace);

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
void forward(const ModelWeights& w, SequenceState& st, const int64_t* tokens, int64_t n, const ForwardOutput& out);

// Checks token ids against the vocabulary (throws Error).
void check_tokens(const ModelConfig& c, const int64_t* tokens, int64_t n);

}  // namespace dsv4
