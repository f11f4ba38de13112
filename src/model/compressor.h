// KV compressor (spec 3.4): CSA (ratio 4, overlapping windows, 2d channels) and HCA (other
// ratios, non-overlapping). Used for the main compressed KV (d = head_dim) and for the
// lightning indexer's keys (d = index_head_dim, Hadamard rotation + FP4 simulation).
#pragma once
#include <cstdint>

#include "model/config.h"
#include "model/state.h"
#include "model/weights.h"
#include "ops/rope.h"

namespace dsv4 {

enum class CompressorKind : uint8_t { kMainKv, kIndexerKeys };

// Feeds positions start..start+n-1 (normalised block input x [n, D]) into the compressor state
// and appends every entry whose window completes (position p with (p+1) % ratio == 0, entry
// p / ratio) to cs.entries, post-processed: BF16 (reference), weighted RMSNorm, RoPE at
// position ratio*i, then FP8 simulation of the non-RoPE dims (main) or Hadamard + FP4
// simulation (indexer keys) in reference mode.
void compressor_forward(const ModelConfig& c, const CompressorWeights& w, CompressorState& cs, CompressorKind kind,
                        const RopeTable& rope, const float* x, int64_t start, int64_t n, Numerics nm, Workspace& ws);

// The two halves of compressor_forward, for batched calls: the token-independent projections
// A = wkv x, Z = wgate x of N rows ([N, cd] each, cd = coff*d, FP32), then the per-sequence
// state update of one sequence's rows (A, Z: its [n, cd] rows) at positions start..start+n-1.
void compressor_project(const CompressorWeights& w, int64_t D, int64_t cd, const float* x, int64_t N, float* A, float* Z,
                        Numerics nm = Numerics::kReference);
void compressor_update(const ModelConfig& c, const CompressorWeights& w, CompressorState& cs, CompressorKind kind,
                       const RopeTable& rope, const float* A, const float* Z, int64_t start, int64_t n, Numerics nm,
                       Workspace& ws);

// Pools one entry from the state: the window ending at position p (p + 1 multiple of ratio).
// out: [d] FP32, before post-processing. Exposed for unit tests.
void compressor_pool(const CompressorState& cs, int64_t p, float* out);

// Sum of n FP32 values in the order of the official code's pooling sum (torch's CPU cascade sum
// over an outer dimension: chunks of 16 rows, chunk totals carried up to 4 levels). n <= 65536.
float window_sum_f32(const float* v, int64_t n);

}  // namespace dsv4
