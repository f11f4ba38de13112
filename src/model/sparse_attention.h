// The attention core of one query row (spec 3.3): scores of all heads against a shared list
// of K = V rows (window + compressed entries), online softmax with the attention sink.
#pragma once
#include <cstdint>

#include "model/state.h"
#include "ops/numerics.h"

namespace dsv4 {

// One query row of the sparse attention with sink (all heads share the list):
// q [H, hd], rows[j] = an FP32 KV row, a cached row in dec's format (decoded on the fly, one
// block of 64 rows at a time, once for all heads) or masked (the reference's -1), in list
// order; online softmax over blocks of 64 list positions (reference: BF16 probabilities in
// P.V). o: [H, hd]. Long lists split the heads between the default pool's threads; the
// scratch of each comes from ws.attn (grown on demand, reused by later calls).
struct KvDecoder {
  KvFormat format = KvFormat::kF32;
  int64_t rope_dim = 0;
};
void sparse_attention_row(const float* q, int64_t H, int64_t hd, const KvRow* rows, int64_t n_rows,
                          const KvDecoder& dec, const float* sink, float scale, Numerics nm, Workspace& ws, float* o);

}  // namespace dsv4
