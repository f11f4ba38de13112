#include "model/compressor.h"

#include <cmath>
#include <limits>
#include <vector>

#include "model/common.h"
#include "ops/linear.h"
#include "ops/norm.h"
#include "ops/quant_sim.h"

namespace dsv4 {

float window_sum_f32(const float* v, int64_t n) {
  // The official pooling is `(kv * score.softmax(dim)).sum(dim)` over the window's rows, and
  // the reference runs it with torch's CPU sum, whose reduction over an outer dimension
  // (SumKernel's cascade sum) adds 16 rows at a time into a fresh FP32 accumulator and carries
  // each finished chunk into the next level (up to 4 levels of 16). A plain running sum gives
  // the same bits for windows of <= 16 rows (CSA, tiny HCA) but not for HCA's 128: one rounding
  // apart, which the entry's BF16 / FP8 roundings then amplify.
  constexpr int kLevels = 4, kStepLog2 = 4;
  constexpr int64_t kStep = int64_t{1} << kStepLog2;
  float acc[kLevels] = {0.0f, 0.0f, 0.0f, 0.0f};
  int64_t i = 0;
  while (i + kStep <= n) {
    for (int64_t j = 0; j < kStep; ++j, ++i) acc[0] += v[i];
    for (int lv = 1; lv < kLevels; ++lv) {
      acc[lv] += acc[lv - 1];
      acc[lv - 1] = 0.0f;
      if ((i & ((kStep - 1) << (lv * kStepLog2))) != 0) break;
    }
  }
  for (; i < n; ++i) acc[0] += v[i];
  for (int lv = 1; lv < kLevels; ++lv) acc[0] += acc[lv];
  return acc[0];
}

void compressor_pool(const CompressorState& cs, int64_t p, float* out) {
  const int64_t r = cs.ratio, d = cs.d, cd = cs.coff * d;
  // Slots in the reference order: (previous window, channels [0, d)) then current window
  // (channels [d, 2d)) for the overlapping compressor; the current window for the other.
  // Scratch of coff*ratio slots, reused (grows once per thread).
  thread_local std::vector<int64_t> pos, off;
  thread_local std::vector<const float*> arow, zrow;
  thread_local std::vector<double> e;
  thread_local std::vector<float> prod;
  const size_t max_slots = static_cast<size_t>(cs.coff * r);
  if (pos.size() < max_slots) {
    prod.resize(max_slots);
    pos.resize(max_slots);
    off.resize(max_slots);
    arow.resize(max_slots);
    zrow.resize(max_slots);
    e.resize(max_slots);
  }
  int64_t ns = 0;
  const int64_t first_cur = p - r + 1;
  if (cs.coff == 2) {
    for (int64_t q = first_cur - r; q < first_cur; ++q) {
      if (q < 0) continue;  // missing previous window: score -inf, weight 0
      pos[ns] = q;
      off[ns++] = 0;
    }
    for (int64_t q = first_cur; q <= p; ++q) {
      pos[ns] = q;
      off[ns++] = d;
    }
  } else {
    for (int64_t q = first_cur; q <= p; ++q) {
      pos[ns] = q;
      off[ns++] = 0;
    }
  }
  for (int64_t s = 0; s < ns; ++s) {
    int64_t slot = pos[s] % cs.ring_cap;
    arow[s] = cs.a.data() + slot * cd + off[s];
    zrow[s] = cs.z.data() + slot * cd + off[s];
  }
  for (int64_t ch = 0; ch < d; ++ch) {
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t s = 0; s < ns; ++s) m = std::max(m, static_cast<double>(zrow[s][ch]));
    double sum = 0;
    for (int64_t s = 0; s < ns; ++s) {
      e[s] = std::exp(static_cast<double>(zrow[s][ch]) - m);
      sum += e[s];
    }
    for (int64_t s = 0; s < ns; ++s) {
      float w = static_cast<float>(e[s] / sum);  // softmax, evaluated in double, rounded once
      prod[s] = w * arow[s][ch];                 // the official `kv * softmax`: FP32 products
    }
    out[ch] = window_sum_f32(prod.data(), ns);
  }
}

void compressor_project(const CompressorWeights& w, int64_t D, int64_t cd, const float* x, int64_t N, float* A, float* Z,
                        Numerics nm) {
  // FP32 weights x FP32 inputs -> FP32 (wide accumulation; same semantics in reference and
  // precise modes).
  const WeightMatrix wkv = w.wkv.matrix(), wgate = w.wgate.matrix();
  linear(wkv, x, D, N, A, cd, fp32_product_numerics(nm, wkv), LinearCompute::kFp32);
  linear(wgate, x, D, N, Z, cd, fp32_product_numerics(nm, wgate), LinearCompute::kFp32);
}

void compressor_forward(const ModelConfig& c, const CompressorWeights& w, CompressorState& cs, CompressorKind kind,
                        const RopeTable& rope, const float* x, int64_t start, int64_t n, Numerics nm, Workspace& ws) {
  const int64_t cd = cs.coff * cs.d;
  float* A = ws.ca.get(static_cast<size_t>(n * cd));
  float* Z = ws.cz.get(static_cast<size_t>(n * cd));
  compressor_project(w, c.dim, cd, x, n, A, Z, nm);
  compressor_update(c, w, cs, kind, rope, A, Z, start, n, nm, ws);
}

void compressor_update(const ModelConfig& c, const CompressorWeights& w, CompressorState& cs, CompressorKind kind,
                       const RopeTable& rope, const float* A, const float* Z, int64_t start, int64_t n, Numerics nm,
                       Workspace& ws) {
  const int64_t r = cs.ratio, d = cs.d, cd = cs.coff * d;
  // Room for the entries completed in this call.
  cs.reserve_entries((start + n) / r);
  const uint16_t* norm_w = bf16_data(w.norm, ws.normw);
  const int64_t rd = c.rope_dim;
  for (int64_t t = 0; t < n; ++t) {
    const int64_t p = start + t;
    const int64_t slot = p % cs.ring_cap;
    float* za = cs.z.data() + slot * cd;
    float* aa = cs.a.data() + slot * cd;
    const int64_t j = p % r;
    for (int64_t ch = 0; ch < cd; ++ch) {
      aa[ch] = A[t * cd + ch];
      za[ch] = Z[t * cd + ch] + f32_at(w.ape, j * cd + ch);
    }
    if ((p + 1) % r != 0) continue;
    const int64_t i = p / r;
    float* e = ws.cpool.get(static_cast<size_t>(d));
    compressor_pool(cs, p, e);
    round_ref(e, d, nm);
    rms_norm(e, 1, d, norm_w, c.norm_eps, e, nm);
    apply_rope(e + (d - rd), r * i, rope, false, nm);
    if (kind == CompressorKind::kMainKv) {
      if (is_ref(nm)) fp8_simulate(e, d - rd, 64);
    } else {
      hadamard_rotate(e, d);
      round_ref(e, d, nm);
      if (is_ref(nm)) fp4_simulate(e, d, 32);
    }
    cs.entries.store(i, e);
    cs.n_entries = i + 1;
  }
}

}  // namespace dsv4
