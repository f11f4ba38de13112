#include "ops/linear_reference.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "base/error.h"
#include "ops/formats.h"
#include "ops/int8_dot.h"
#include "ops/quant_sim.h"

namespace dsv4 {
namespace {

// The golden data evaluates every matrix product in fp64 and rounds once to the output
// dtype. We therefore form the exact products of the (already rounded / quantised) FP32
// operands in double and accumulate in double.
//
// For the block-scaled FP8 / FP4 GEMMs the reference adds one partial product per K block
// (scaled by both block scales) to the accumulator. With the operands on the FP8 / FP4 grids
// each block's partial sum is exact in double (all terms are multiples of sA*sB*2^-18 below
// 2^25 * sA*sB), so summing the dequantised values block by block and adding each block
// partial to the running double total reproduces that order exactly.
enum class Operands : uint8_t {
  kAsIs,      // FP32 inputs used unchanged
  kBf16,      // inputs rounded to BF16
  kFp8Act,    // inputs quantised to FP8 (act_quant, block 128) and dequantised exactly
};

struct Plan {
  Operands operands = Operands::kAsIs;
  bool round_weights_bf16 = false;  // kBf16: weights dequantised to BF16 (exact for FP8 codes)
  int64_t k_block = 0;              // partial-sum block along K (0: one block)
  bool bf16_output = false;
};

constexpr int64_t kActBlock = 128;  // act_quant block along K for the FP8 / FP4 GEMMs
constexpr int64_t kFp4Block = 32;   // FP4 weight scale block along K

Plan make_plan(const WeightMatrix& w, Numerics numerics, LinearCompute compute) {
  Plan p;
  if (numerics != Numerics::kReference) return p;  // exact weights, FP32 inputs, FP32 out
  switch (compute) {
    case LinearCompute::kFp32:
      return p;
    case LinearCompute::kBf16:
      p.operands = Operands::kBf16;
      p.round_weights_bf16 = true;
      p.bf16_output = true;
      return p;
    case LinearCompute::kNative:
      switch (w.format == WeightFormat::kGgml ? w.ggml_role : w.format) {
        case WeightFormat::kF32:
          return p;
        case WeightFormat::kBf16:
          p.operands = Operands::kBf16;
          p.bf16_output = true;
          return p;
        case WeightFormat::kFp8Block:
          p.operands = Operands::kFp8Act;
          p.k_block = kActBlock;
          p.bf16_output = true;
          return p;
        case WeightFormat::kFp4:
        case WeightFormat::kGgml:
          p.operands = Operands::kFp8Act;
          p.k_block = kFp4Block;
          p.bf16_output = true;
          return p;
      }
  }
  return p;
}

// Reused per thread so that a call allocates only when a larger shape first appears.
struct Scratch {
  std::vector<float> x;      // prepared inputs [n_tokens, cols]
  std::vector<float> w;      // one dequantised weight row [cols]
  std::vector<uint8_t> codes;
  std::vector<float> scales;
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

template <typename T>
void ensure_size(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

// Sum of x[k] * w[k] over [0, n) in double; the products of two floats are exact in double.
// Four interleaved partial sums (fixed order, so results do not depend on the batch shape).
inline double dot_double(const float* x, const float* w, int64_t n) {
  double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
  int64_t k = 0;
  for (; k + 4 <= n; k += 4) {
    s0 += static_cast<double>(x[k]) * w[k];
    s1 += static_cast<double>(x[k + 1]) * w[k + 1];
    s2 += static_cast<double>(x[k + 2]) * w[k + 2];
    s3 += static_cast<double>(x[k + 3]) * w[k + 3];
  }
  for (; k < n; ++k) s0 += static_cast<double>(x[k]) * w[k];
  return (s0 + s1) + (s2 + s3);
}

}  // namespace

void linear_reference(const WeightMatrix& w, const float* x, int64_t ldx, int64_t n_tokens, float* y, int64_t ldy,
                      Numerics numerics, LinearCompute compute) {
  const int64_t rows = w.rows;
  const int64_t cols = w.cols;
  if (n_tokens <= 0 || rows <= 0) return;
  if (ldx < cols || ldy < rows) {
    throw Error("linear: row strides ldx=" + std::to_string(ldx) + ", ldy=" + std::to_string(ldy) +
                " too small for a [" + std::to_string(rows) + ", " + std::to_string(cols) + "] weight");
  }
  if (numerics == Numerics::kInt8 && int8_dot::supports(w)) {
    // The int8 mode's arithmetic (int8_dot.h), row by row in scalar code.
    std::vector<int8_t> q(static_cast<size_t>(int8_dot::padded_values(cols)));
    std::vector<float> d(static_cast<size_t>(int8_dot::scale_words(cols)));
    for (int64_t t = 0; t < n_tokens; ++t) {
      int8_dot::quantize_activations(x + t * ldx, cols, q.data(), d.data());
      for (int64_t r = 0; r < rows; ++r) y[t * ldy + r] = int8_dot::dot_reference(w, r, q.data(), d.data());
    }
    return;
  }
  const Plan plan = make_plan(w, numerics, compute);
  Scratch& s = scratch();

  // Inputs, prepared once per call for all tokens.
  ensure_size(s.x, static_cast<size_t>(n_tokens * cols));
  float* xp = s.x.data();
  switch (plan.operands) {
    case Operands::kAsIs:
      for (int64_t t = 0; t < n_tokens; ++t) std::memcpy(xp + t * cols, x + t * ldx, static_cast<size_t>(cols) * 4);
      break;
    case Operands::kBf16:
      for (int64_t t = 0; t < n_tokens; ++t) {
        for (int64_t c = 0; c < cols; ++c) xp[t * cols + c] = round_bf16(x[t * ldx + c]);
      }
      break;
    case Operands::kFp8Act: {
      // act_quant per token row (block 128 along K), then the exact dequantised values
      // q * s: the scales are powers of two, so this loses nothing against (q, s).
      const int64_t n_blocks = (cols + kActBlock - 1) / kActBlock;
      ensure_size(s.codes, static_cast<size_t>(cols));
      ensure_size(s.scales, static_cast<size_t>(n_blocks));
      for (int64_t t = 0; t < n_tokens; ++t) {
        act_quant_fp8(x + t * ldx, cols, kActBlock, s.codes.data(), s.scales.data());
        for (int64_t c = 0; c < cols; ++c) xp[t * cols + c] = e4m3_to_f32(s.codes[c]) * s.scales[c / kActBlock];
      }
      break;
    }
  }

  // Each weight row is dequantised once and reused for every token of the batch.
  ensure_size(s.w, static_cast<size_t>(cols));
  float* wr = s.w.data();
  const int64_t k_block = plan.k_block > 0 ? plan.k_block : cols;
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_rows(w, r, 1, wr);
    if (plan.round_weights_bf16) {
      for (int64_t c = 0; c < cols; ++c) wr[c] = round_bf16(wr[c]);
    }
    for (int64_t t = 0; t < n_tokens; ++t) {
      const float* xt = xp + t * cols;
      double acc = 0.0;
      for (int64_t k0 = 0; k0 < cols; k0 += k_block) {
        acc += dot_double(xt + k0, wr + k0, std::min(k_block, cols - k0));
      }
      // double -> float -> BF16, as PyTorch converts a double tensor to BF16.
      const float out = static_cast<float>(acc);
      y[t * ldy + r] = plan.bf16_output ? round_bf16(out) : out;
    }
  }
}

}  // namespace dsv4
