// Multi-token prediction block (spec 3.9). Position i combines the main model's final streams
// at i (before hc_head) with the embedding of token i+1; its logits predict token i+2
// (DeepSeek-V3 convention; the golden data calls mtp(h[:, :-1], 0, tokens[:, 1:])).
#pragma once
#include <cstdint>

#include "model/forward.h"

namespace dsv4 {

// Input streams of the MTP block: X[t, j] = e_proj(enorm(embed(next[t]))) + h_proj(hnorm(h[t, j])).
void mtp_input(const ModelWeights& w, const MtpWeights& m, const float* h, const int64_t* next_tokens, int64_t n,
               float* X, Numerics nm, Workspace& ws);

// Appends n MTP positions at state.mtp_pos: h [n, hc, D] final main streams of positions
// mtp_pos..mtp_pos+n-1, next_tokens[t] the token at position mtp_pos+t+1. logits: [n, V] with
// all_logits, else [1, V] (may be null). out_streams: [n, hc, D] MTP block output (may be null).
void mtp_forward(const ModelWeights& w, SequenceState& st, const float* h, const int64_t* next_tokens, int64_t n,
                 float* logits, bool all_logits, float* out_streams, BlockTrace* trace);

}  // namespace dsv4
