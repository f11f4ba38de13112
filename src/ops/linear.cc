#include "ops/linear.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>
#include <string>

#include "backend/thread_pool.h"
#include "base/error.h"
#include "ops/formats.h"
#include "ops/int8_dot.h"
#include "ops/linear_kernels.h"
#include "ops/linear_reference.h"
#include "ops/quant_sim.h"

namespace dsv4 {
namespace {

using linear_kernels::Accumulation;

constexpr int64_t kActBlock = 128;  // act_quant block along K for the FP8 / FP4 GEMMs

// How the inputs are prepared (mirrors linear_reference.cc) and which kernel mode runs.
struct Plan {
  enum class Inputs : uint8_t { kAsIs, kBf16, kFp8Act } inputs = Inputs::kAsIs;
  Accumulation accumulation = Accumulation::kFloat;
  bool bf16_output = false;
  bool bf16_weights = false;  // kBf16 compute: weights rounded to BF16
};

Plan make_plan(const WeightMatrix& w, Numerics numerics, LinearCompute compute) {
  Plan p;
  if (numerics == Numerics::kPrecise) return p;
  if (numerics == Numerics::kInt8) {  // precise, except GGUF Q8_0 / MXFP4: int8 block products
    if (int8_dot::supports(w)) p.accumulation = Accumulation::kInt8;
    return p;
  }
  p.accumulation = Accumulation::kDouble;
  switch (compute) {
    case LinearCompute::kFp32:
      return p;
    case LinearCompute::kBf16:
      p.inputs = Plan::Inputs::kBf16;
      p.bf16_weights = true;
      p.bf16_output = true;
      return p;
    case LinearCompute::kNative:
      switch (w.format == WeightFormat::kGgml ? w.ggml_role : w.format) {
        case WeightFormat::kF32:
          return p;
        case WeightFormat::kBf16:
          p.inputs = Plan::Inputs::kBf16;
          p.bf16_output = true;
          return p;
        case WeightFormat::kFp8Block:
        case WeightFormat::kFp4:
        case WeightFormat::kGgml:
          p.inputs = Plan::Inputs::kFp8Act;
          p.accumulation = Accumulation::kDoubleBlocks;
          p.bf16_output = true;
          return p;
      }
  }
  return p;
}

// kBf16 compute rounds the dequantised weights to BF16; the kernels use them unrounded. FP4
// values (lowest bit 2^(S-128)) and FP8 values (lowest bit 2^(S-136)) are exact in BF16
// (subnormals down to 2^-133) except FP8 with an E8M0 scale code below 3, far outside what
// checkpoints hold; such weights take the reference path. (FP32 dequantisation is always
// exact, so the other modes need no such check. Scale codes above 240, weights beyond 2^120,
// would overflow FP32 in the reference but not in the double kernels; checkpoints hold none.)
// GGUF weights are rounded by the kernels as they are decoded (Problem::bf16_weights).
bool bf16_rounding_is_exact(const WeightMatrix& w) {
  if (w.format != WeightFormat::kFp8Block) return w.format != WeightFormat::kF32;
  const int64_t sc = (w.cols + 127) / 128;
  const int64_t rb0 = w.row_begin / 128, rb1 = (w.row_begin + w.rows + 127) / 128;
  const uint8_t* first = w.scale + rb0 * sc;
  return std::all_of(first, first + (rb1 - rb0) * sc, [](uint8_t s) { return s >= 3; });
}

// Per-thread input buffer, grown on demand (no allocation in a steady decode loop).
linear_kernels::AlignedBuffer& input_buffer() {
  thread_local linear_kernels::AlignedBuffer b;
  return b;
}

// Writes one prepared input row in the kernels' packed order and type; zero padding.
template <typename T>
void pack_row(const Plan& plan, WeightFormat format, const float* x, int64_t cols, int64_t stride, T* out,
              float* values, float* scales) {
  std::fill(out + cols, out + stride, T(0));
  auto put = [&](int64_t c, float v) { out[linear_kernels::packed_index(format, c)] = static_cast<T>(v); };
  switch (plan.inputs) {
    case Plan::Inputs::kAsIs:
      for (int64_t c = 0; c < cols; ++c) put(c, x[c]);
      break;
    case Plan::Inputs::kBf16:
      for (int64_t c = 0; c < cols; ++c) put(c, round_bf16(x[c]));
      break;
    case Plan::Inputs::kFp8Act:
      // act_quant (block 128 along K), then the exact values q * s (s a power of two).
      act_quant_fp8_values(x, cols, kActBlock, values, scales);
      for (int64_t c = 0; c < cols; ++c) put(c, values[c]);
      break;
  }
}

// Validates one product; returns false when it has nothing to do.
bool check_product(const LinearProduct& p) {
  const WeightMatrix& w = p.w;
  if (p.n_tokens <= 0 || w.rows <= 0) return false;
  if (p.ldx < w.cols || p.ldy < w.rows) {
    throw Error("linear: row strides ldx=" + std::to_string(p.ldx) + ", ldy=" + std::to_string(p.ldy) +
                " too small for a [" + std::to_string(w.rows) + ", " + std::to_string(w.cols) + "] weight");
  }
  const bool quantised = w.format == WeightFormat::kFp8Block || w.format == WeightFormat::kFp4;
  if (w.data == nullptr || (quantised && w.scale == nullptr)) {
    throw Error("linear: weight view without data or block scales");
  }
  return true;
}

// Bytes of prepared inputs a product needs (0: it takes the reference path).
int64_t prepared_bytes(const LinearProduct& p, const Plan& plan) {
  if (plan.accumulation == Accumulation::kInt8) {
    return p.n_tokens * (int8_dot::padded_values(p.w.cols) + int8_dot::scale_words(p.w.cols) * 4);
  }
  const int64_t stride = linear_kernels::packed_stride(p.w.cols);
  const bool wide = plan.accumulation != Accumulation::kFloat;
  const bool blocks = plan.accumulation == Accumulation::kDoubleBlocks;
  const int64_t main_bytes = p.n_tokens * stride * (wide ? 8 : 4);
  const int64_t f32_bytes = blocks ? p.n_tokens * stride * 4 : 0;
  return main_bytes + f32_bytes;
}

// The kernels' problem of product p, inputs not yet set.
linear_kernels::Problem problem_of(const LinearProduct& p, Accumulation accumulation) {
  linear_kernels::Problem problem;
  problem.w = &p.w;
  problem.n_tokens = p.n_tokens;
  problem.y = p.y;
  problem.ldy = p.ldy;
  problem.accumulation = accumulation;
  return problem;
}

// The int8 mode's inputs at `base`: each token's int8 values, then their scales and sums.
linear_kernels::Problem prepare_int8(const LinearProduct& p, uint8_t* base) {
  const int64_t cols = p.w.cols, q_stride = int8_dot::padded_values(cols), d_stride = int8_dot::scale_words(cols);
  int8_t* q = reinterpret_cast<int8_t*>(base);
  float* d = reinterpret_cast<float*>(base + p.n_tokens * q_stride);
  for (int64_t t = 0; t < p.n_tokens; ++t) int8_dot::quantize_activations(p.x + t * p.ldx, cols, q + t * q_stride, d + t * d_stride);
  linear_kernels::Problem problem = problem_of(p, Accumulation::kInt8);
  problem.x = q;
  problem.x_stride = q_stride;
  problem.x_scales = d;
  problem.x_scale_stride = d_stride;
  return problem;
}

// Prepares the inputs of one product at `base` (prepared_bytes of them, 64-byte aligned) and
// returns the kernels' problem. `values` / `scales` hold one token's act_quant results.
linear_kernels::Problem prepare(const LinearProduct& p, const Plan& plan, uint8_t* base, float* values, float* scales) {
  if (plan.accumulation == Accumulation::kInt8) return prepare_int8(p, base);
  const WeightMatrix& w = p.w;
  const int64_t cols = w.cols, n_tokens = p.n_tokens;
  const int64_t stride = linear_kernels::packed_stride(cols);
  const bool wide = plan.accumulation != Accumulation::kFloat;
  const bool blocks = plan.accumulation == Accumulation::kDoubleBlocks;
  const int64_t n_blocks = (cols + kActBlock - 1) / kActBlock;
  const int64_t main_bytes = n_tokens * stride * (wide ? 8 : 4);
  // Reference FP8 / FP4: the inputs also as FP32 (exact), after the double copy.
  float* x_f32 = blocks ? reinterpret_cast<float*>(base + main_bytes) : nullptr;
  int act_min = 1 << 20, act_max = -(1 << 20);  // binary exponents of the act_quant scales
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* xt = p.x + t * p.ldx;
    if (wide) {
      pack_row(plan, w.format, xt, cols, stride, reinterpret_cast<double*>(base) + t * stride, values, scales);
    } else {
      pack_row(plan, w.format, xt, cols, stride, reinterpret_cast<float*>(base) + t * stride, values, scales);
    }
    if (blocks) {
      const double* xd = reinterpret_cast<const double*>(base) + t * stride;
      for (int64_t c = 0; c < stride; ++c) x_f32[t * stride + c] = static_cast<float>(xd[c]);
    }
    if (plan.inputs == Plan::Inputs::kFp8Act) {  // pack_row left this token's scales there
      for (int64_t b = 0; b < n_blocks; ++b) {
        int e = 0;
        std::frexp(scales[b], &e);
        act_min = std::min(act_min, e);
        act_max = std::max(act_max, e);
      }
    }
  }
  linear_kernels::Problem problem = problem_of(p, plan.accumulation);
  problem.x = base;
  problem.x_stride = stride;
  problem.bf16_output = plan.bf16_output;
  problem.act_exponent_span = act_max >= act_min ? act_max - act_min : 0;
  problem.x_f32 = x_f32;
  problem.bf16_weights = plan.bf16_weights && w.format == WeightFormat::kGgml;
  return problem;
}

// Per-thread list of the prepared problems of a call (grown, never shrunk).
struct Deferred {
  LinearProduct product;
  std::vector<float> x;
};
struct CallState {
  std::vector<linear_kernels::Problem> problems;
  std::vector<Deferred> deferred;  // products for the reference path
  std::vector<int64_t> first_tile;  // prefix sums of the problems' tile counts
  std::vector<std::pair<int64_t, int64_t>> ref_chunks;  // reference path: (deferred index, first row)
  std::vector<LinearProduct> native;  // precise mode: GGUF F32 / BF16 weights as native formats
};
CallState& call_state() {
  thread_local CallState s;
  return s;
}

void run_tiles(const CallState& st, int64_t tiles, ThreadPool& pool);

}  // namespace

void linear(const WeightMatrix& w, const float* x, int64_t ldx, int64_t n_tokens, float* y, int64_t ldy,
            Numerics numerics, LinearCompute compute) {
  linear(w, x, ldx, n_tokens, y, ldy, numerics, compute, default_thread_pool());
}

void linear(const WeightMatrix& w, const float* x, int64_t ldx, int64_t n_tokens, float* y, int64_t ldy,
            Numerics numerics, LinearCompute compute, ThreadPool& pool) {
  const LinearProduct p{w, x, ldx, n_tokens, y, ldy};
  linear_group(&p, 1, numerics, compute, pool);
}

void linear_group(const LinearProduct* products, int64_t count, Numerics numerics, LinearCompute compute,
                  ThreadPool& pool) {
  // Inputs of all products are prepared before any output is written, so an output may alias
  // any input.
  int64_t total_bytes = 0, max_cols = 0;
  for (int64_t i = 0; i < count; ++i) {
    const LinearProduct& p = products[i];
    if (!check_product(p)) continue;
    const Plan plan = make_plan(p.w, numerics, compute);
    total_bytes += (prepared_bytes(p, plan) + 63) / 64 * 64;
    max_cols = std::max(max_cols, p.w.cols);
  }
  const int64_t max_blocks = (max_cols + kActBlock - 1) / kActBlock;
  uint8_t* base = input_buffer().get<uint8_t>(total_bytes + (max_cols + max_blocks) * 4 + 64);
  float* values = reinterpret_cast<float*>(base + total_bytes);
  float* scales = values + max_cols;

  CallState& st = call_state();
  st.problems.clear();
  st.first_tile.clear();
  st.deferred.clear();
  int64_t tiles = 0;
  st.native.clear();
  st.native.reserve(static_cast<size_t>(count));  // stable addresses: the problems point at these
  for (int64_t i = 0; i < count; ++i) {
    if (!check_product(products[i])) continue;
    const LinearProduct* pp = &products[i];
    if (numerics != Numerics::kReference && pp->w.format == WeightFormat::kGgml &&
        (pp->w.ggml_type == GgmlType::F32 || pp->w.ggml_type == GgmlType::BF16)) {
      // Precise (and int8) mode ignores what a GGUF weight stands for: F32 / BF16 rows are the native
      // formats' rows, so the SIMD kernels take them.
      LinearProduct& q = st.native.emplace_back(*pp);
      q.w.format = pp->w.ggml_type == GgmlType::F32 ? WeightFormat::kF32 : WeightFormat::kBf16;
      pp = &q;
    }
    const LinearProduct& p = *pp;
    const Plan plan = make_plan(p.w, numerics, compute);
    if (!linear_kernels::supports(p.w) || (plan.bf16_weights && !bf16_rounding_is_exact(p.w))) {
      // Rare shapes / scales: the exact scalar path after the pass, on a copy of the inputs
      // (an output of the pass may overwrite them).
      Deferred& d = st.deferred.emplace_back();
      d.product = p;
      d.x.resize(static_cast<size_t>(p.n_tokens * p.ldx));
      std::copy(p.x, p.x + (p.n_tokens - 1) * p.ldx + p.w.cols, d.x.begin());
      d.product.x = d.x.data();
      continue;
    }
    st.problems.push_back(prepare(p, plan, base, values, scales));
    st.first_tile.push_back(tiles);
    tiles += (p.w.rows + linear_kernels::kRowTile - 1) / linear_kernels::kRowTile;
    base += (prepared_bytes(p, plan) + 63) / 64 * 64;
  }
  st.first_tile.push_back(tiles);
  if (tiles > 0) run_tiles(st, tiles, pool);
  if (st.deferred.empty()) return;
  // The exact scalar path, its output rows split between the threads in chunks (each row's
  // outputs depend only on that row, so the split changes no bits).
  constexpr int64_t kRefChunk = 32;
  std::vector<std::pair<int64_t, int64_t>>& chunks = st.ref_chunks;
  chunks.clear();
  for (size_t i = 0; i < st.deferred.size(); ++i)
    for (int64_t r = 0; r < st.deferred[i].product.w.rows; r += kRefChunk) chunks.push_back({static_cast<int64_t>(i), r});
  std::atomic<int64_t> next{0};
  const int64_t n_chunks = static_cast<int64_t>(chunks.size());
  auto work = [&](int64_t, int64_t, int) {
    for (int64_t k; (k = next.fetch_add(1, std::memory_order_relaxed)) < n_chunks;) {
      const LinearProduct& p = st.deferred[static_cast<size_t>(chunks[static_cast<size_t>(k)].first)].product;
      const int64_t r0 = chunks[static_cast<size_t>(k)].second, n = std::min(kRefChunk, p.w.rows - r0);
      linear_reference(p.w.row_slice(r0, n), p.x, p.ldx, p.n_tokens, p.y + r0, p.ldy, numerics, compute);
    }
  };
  const int64_t threads = std::min<int64_t>(pool.size(), n_chunks);
  if (threads <= 1) return work(0, 1, 0);
  pool.parallel_for(threads, 1, work);
}

namespace {

void run_tiles(const CallState& st, int64_t tiles, ThreadPool& pool) {
  // One pass over the row tiles of all products; a chunk of tiles may span several products.
  // The threads claim chunks of consecutive tiles from a shared counter instead of taking
  // fixed equal ranges, so that on a shared or unevenly loaded machine a thread that runs
  // late does less of the work (a tile's outputs do not depend on which thread computes it).
  const CallState* state = &st;
  const int64_t threads = pool.size();
  const int64_t chunk = std::max<int64_t>(1, tiles / (threads * 8));
  std::atomic<int64_t> next{0};
  auto work = [state, tiles, chunk, &next](int64_t, int64_t, int) {
    for (;;) {
      int64_t begin = next.fetch_add(chunk, std::memory_order_relaxed);
      if (begin >= tiles) return;
      const int64_t end = std::min(tiles, begin + chunk);
      size_t i = static_cast<size_t>(std::upper_bound(state->first_tile.begin(), state->first_tile.end(), begin) -
                                     state->first_tile.begin()) - 1;
      while (begin < end) {
        const int64_t first = state->first_tile[i], stop = std::min(end, state->first_tile[i + 1]);
        const linear_kernels::Problem& pb = state->problems[i];
        if (pb.accumulation == Accumulation::kInt8) {
          int8_dot::compute_tiles(pb, begin - first, stop - first);
        } else {
          linear_kernels::compute_tiles(pb, begin - first, stop - first);
        }
        begin = stop;
        ++i;
      }
    }
  };
  if (threads == 1 || tiles == 1) return work(0, 1, 0);
  pool.parallel_for(threads, 1, work);
}

}  // namespace
}  // namespace dsv4
