// Lightning indexer of CSA layers (spec 3.5): selects, for every query position, the top-k
// compressed entries by sum_h w_h ReLU(q_h . k_i); ties go to the lower entry index.
#pragma once
#include <cstdint>

#include "model/config.h"
#include "model/state.h"
#include "model/weights.h"

namespace dsv4 {

// x: normalised block input [n, D]; qr: normalised low-rank query [n, q_lora_rank]; positions
// start..start+n-1. Runs the indexer compressor (ls.indexer), then writes for every query its
// selection into sel[t * index_topk ...] (descending score, ties by ascending index, -1 padded)
// and the number of valid entries into count[t].
void indexer_forward(const ModelConfig& c, const IndexerWeights& w, LayerState& ls, const float* x, const float* qr,
                     int64_t start, int64_t n, Numerics nm, Workspace& ws, int64_t* sel, int64_t* count);

// The two halves of indexer_forward, for batched calls. indexer_project: the token-independent
// part of N rows: queries q [N, HI*cI] (wq_b of qr; no RoPE yet), scaled head weights wt [N, HI],
// the indexer compressor's projections A, Z [N, cd] (cd = coff * index_head_dim).
// indexer_select: one sequence's rows (q is finished in place: RoPE, Hadamard, FP4) at
// positions start..start+n-1: compressor update, then the top-k selection as indexer_forward.
void indexer_project(const ModelConfig& c, const IndexerWeights& w, int64_t cd, const float* x, const float* qr,
                     int64_t N, Numerics nm, float* q, float* wt, float* A, float* Z);
void indexer_select(const ModelConfig& c, const IndexerWeights& w, LayerState& ls, float* q, const float* wt,
                    const float* A, const float* Z, int64_t start, int64_t n, Numerics nm, Workspace& ws, int64_t* sel,
                    int64_t* count);

}  // namespace dsv4
