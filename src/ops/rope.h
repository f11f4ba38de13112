// Partial interleaved RoPE with optional YaRN frequency blending (spec 3.0.6).
#pragma once
#include <cstdint>
#include <vector>

#include "ops/numerics.h"

namespace dsv4 {

struct RopeParams {
  int64_t rope_dim = 64;        // rotated dims (pairs = rope_dim / 2)
  double theta = 10000.0;
  bool yarn = false;            // compressed layers only
  double factor = 1.0;
  int64_t original_seq_len = 0;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
};

struct RopeTable {
  RopeParams params;
  std::vector<float> freqs;  // rope_dim/2 FP32 frequencies after YaRN blending
  int64_t yarn_low = 0, yarn_high = 0;  // correction range (for tests; 0/0 without YaRN)
};

RopeTable make_rope_table(const RopeParams& params);

// Rotates x[0..rope_dim) (adjacent pairs as complex numbers) by angle pos*freq
// (inverse: by -pos*freq). Angles in FP32 as the reference computes them; kReference rounds
// the result to BF16.
void apply_rope(float* x, int64_t pos, const RopeTable& table, bool inverse, Numerics numerics);

// apply_rope on the `heads` vectors x, x + stride, ... of one position, with the same bits; the
// angles' cosines and sines are formed once for all of them.
void apply_rope_heads(float* x, int64_t heads, int64_t stride, int64_t pos, const RopeTable& table, bool inverse,
                      Numerics numerics);

}  // namespace dsv4
