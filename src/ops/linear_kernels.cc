// Highway kernels of linear(); see linear_kernels.h for the numerics. This file is compiled
// once per target by foreach_target.h.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/linear_kernels.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include <algorithm>
#include <cstring>

#include "ops/formats.h"
#include "ops/linear_kernels.h"

HWY_BEFORE_NAMESPACE();
namespace dsv4::linear_kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// ---------------------------------------------------------------------------------------
// Decoding N stored weights into N float lanes. The E4M3 / E2M1 codes are not looked up: their
// exponent and mantissa bits are moved into an FP32 bit pattern, which is the code's value
// times 2^-120 (E4M3, exponent bias 7 vs 127) resp. 2^-126 (E2M1, bias 1); the exponent-0
// codes land on FP32 subnormals with the same scaling, so the pattern is exact for every code
// except the E4M3 NaN (0x7F / 0xFF), which reads as +-480 (checkpoints hold no NaN weights).
// The power of two is folded into the block scale.

template <class DF>
HWY_INLINE hn::Vec<DF> E4m3Bits(DF df, const uint8_t* HWY_RESTRICT p) {
  const hn::Rebind<uint32_t, DF> du;
  const hn::Rebind<uint8_t, DF> d8;
  const auto b = hn::PromoteTo(du, hn::LoadU(d8, p));
  const auto magnitude = hn::And(hn::ShiftLeft<20>(b), hn::Set(du, 0x07F00000u));
  const auto sign = hn::And(hn::ShiftLeft<24>(b), hn::Set(du, 0x80000000u));
  return hn::BitCast(df, hn::Or(magnitude, sign));
}

// Low nibbles (even columns) or high nibbles (odd columns) of N packed bytes.
template <bool kHigh, class DF>
HWY_INLINE hn::Vec<DF> E2m1Bits(DF df, const uint8_t* HWY_RESTRICT p) {
  const hn::Rebind<uint32_t, DF> du;
  const hn::Rebind<uint8_t, DF> d8;
  const auto b = hn::PromoteTo(du, hn::LoadU(d8, p));
  const auto mask = hn::Set(du, 0x01C00000u);
  const auto sign_bit = hn::Set(du, 0x80000000u);
  if constexpr (kHigh) {
    return hn::BitCast(df, hn::Or(hn::And(hn::ShiftLeft<18>(b), mask), hn::And(hn::ShiftLeft<24>(b), sign_bit)));
  } else {
    return hn::BitCast(df, hn::Or(hn::And(hn::ShiftLeft<22>(b), mask), hn::And(hn::ShiftLeft<28>(b), sign_bit)));
  }
}

template <class DF>
HWY_INLINE hn::Vec<DF> Bf16Values(DF df, const uint8_t* HWY_RESTRICT p) {
  const hn::Rebind<uint32_t, DF> du;
  const hn::Rebind<uint16_t, DF> d16;
  const auto h = hn::LoadU(d16, reinterpret_cast<const uint16_t*>(p));
  return hn::BitCast(df, hn::ShiftLeft<16>(hn::PromoteTo(du, h)));
}

template <class DF>
HWY_INLINE hn::Vec<DF> F32Values(DF df, const uint8_t* HWY_RESTRICT p) {
  return hn::LoadU(df, reinterpret_cast<const float*>(p));
}

// Float lanes -> accumulation lanes (identity for float, exact widening for double).
template <class DA, class VF>
HWY_INLINE hn::Vec<DA> Widen(DA da, VF v) {
  if constexpr (sizeof(hn::TFromD<DA>) == 4) {
    return v;
  } else {
    return hn::PromoteTo(da, v);
  }
}

// 2^e as a float for -126 <= e <= 127.
inline float pow2f(int e) {
  const uint32_t bits = static_cast<uint32_t>(e + 127) << 23;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Multiplier turning the code bit patterns of one block (code * 2^-bias_shift) into exact
// weights code * 2^(S - 127). One FP32 multiply is exact (a single rounding of the exact
// product, as dequantize_rows does) when 2^(S - 127 + bias_shift) is a finite float; else two.
struct FloatFactor {
  float first;
  float second;  // 1 when one multiply suffices
};
inline FloatFactor float_factor(uint8_t s, int bias_shift) {
  const int e = static_cast<int>(s) - 127 + bias_shift;
  if (s != 0xFF && e <= 127) return {pow2f(e), 1.0f};
  return {pow2f(bias_shift), e8m0_to_f32(s)};
}
inline double double_factor(uint8_t s, int bias_shift) {
  return static_cast<double>(e8m0_to_f32(s)) * static_cast<double>(pow2f(bias_shift));
}

constexpr int kE4m3Shift = 120;
constexpr int kE2m1Shift = 126;

// ---------------------------------------------------------------------------------------
// Decodes elements [e0, e1) of one stored row (e0 a multiple of 128) into dst in packed order,
// ceil((e1 - e0) / N) vectors, zero beyond the row's end. For kDoubleBlocks dst gets the code
// bit patterns and factors[b] the multiplier of the b-th scale block of the chunk.
template <Accumulation kAcc, class DA>
void DecodeRowChunk(DA da, const WeightMatrix& w, int64_t row, int64_t e0, int64_t e1, hn::TFromD<DA>* HWY_RESTRICT dst,
                    double* HWY_RESTRICT factors) {
  using T = hn::TFromD<DA>;
  const hn::Rebind<float, DA> df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(da));
  const int64_t cols = w.cols;
  switch (w.format) {
    case WeightFormat::kFp8Block: {
      const int64_t scale_cols = (cols + 127) / 128;
      const uint8_t* codes = w.data + row * cols;
      const uint8_t* scales = w.scale + (row / 128) * scale_cols;
      for (int64_t b0 = e0; b0 < e1; b0 += 128) {
        const uint8_t s = scales[b0 / 128];
        const int64_t b1 = std::min(e1, b0 + 128);
        const int64_t full_end = b0 + (b1 - b0) / N * N;
        T* out = dst + (b0 - e0);
        alignas(64) uint8_t tail[64] = {};
        const int64_t tail_n = b1 - full_end;
        if (tail_n > 0) std::memcpy(tail, codes + full_end, static_cast<size_t>(tail_n));
        const int64_t nvec = (b1 - b0 + N - 1) / N;
        auto bits_at = [&](int64_t v) {
          const int64_t e = b0 + v * N;
          return E4m3Bits(df, e < full_end ? codes + e : tail);
        };
        if constexpr (kAcc == Accumulation::kFloat) {
          const FloatFactor f = float_factor(s, kE4m3Shift);
          const auto f1 = hn::Set(df, f.first), f2 = hn::Set(df, f.second);
          for (int64_t v = 0; v < nvec; ++v) {
            auto x = hn::Mul(bits_at(v), f1);
            if (f.second != 1.0f) x = hn::Mul(x, f2);
            hn::Store(x, da, out + v * N);
          }
        } else if constexpr (kAcc == Accumulation::kDouble) {
          const auto f = hn::Set(da, double_factor(s, kE4m3Shift));
          for (int64_t v = 0; v < nvec; ++v) hn::Store(hn::Mul(Widen(da, bits_at(v)), f), da, out + v * N);
        } else {
          factors[(b0 - e0) / 128] = double_factor(s, kE4m3Shift);
          for (int64_t v = 0; v < nvec; ++v) hn::Store(Widen(da, bits_at(v)), da, out + v * N);
        }
      }
      break;
    }
    case WeightFormat::kFp4: {
      // cols % 32 == 0 and N <= 16, so a vector never leaves its 32-column block.
      const uint8_t* packed = w.data + row * (cols / 2);
      const uint8_t* scales = w.scale + row * (cols / 32);
      for (int64_t b0 = e0; b0 < e1; b0 += 32) {
        const uint8_t s = scales[b0 / 32];
        T* out = dst + (b0 - e0);
        const uint8_t* bytes = packed + b0 / 2;
        for (int64_t o = 0; o < 32; o += N) {
          const auto bits = o < 16 ? E2m1Bits<false>(df, bytes + o) : E2m1Bits<true>(df, bytes + (o - 16));
          if constexpr (kAcc == Accumulation::kFloat) {
            const FloatFactor f = float_factor(s, kE2m1Shift);
            auto x = hn::Mul(bits, hn::Set(df, f.first));
            if (f.second != 1.0f) x = hn::Mul(x, hn::Set(df, f.second));
            hn::Store(x, da, out + o);
          } else if constexpr (kAcc == Accumulation::kDouble) {
            hn::Store(hn::Mul(Widen(da, bits), hn::Set(da, double_factor(s, kE2m1Shift))), da, out + o);
          } else {
            hn::Store(Widen(da, bits), da, out + o);
          }
        }
        if constexpr (kAcc == Accumulation::kDoubleBlocks) factors[(b0 - e0) / 32] = double_factor(s, kE2m1Shift);
      }
      break;
    }
    case WeightFormat::kBf16:
    case WeightFormat::kF32: {
      const bool bf16 = w.format == WeightFormat::kBf16;
      const int64_t esize = bf16 ? 2 : 4;
      const uint8_t* src = w.data + row * cols * esize;
      const int64_t full_end = e0 + (e1 - e0) / N * N;
      alignas(64) uint8_t tail[64 * 4] = {};
      if (e1 > full_end) std::memcpy(tail, src + full_end * esize, static_cast<size_t>((e1 - full_end) * esize));
      for (int64_t e = e0; e < e1; e += N) {
        const uint8_t* p = e < full_end ? src + e * esize : tail;
        const auto v = bf16 ? Bf16Values(df, p) : F32Values(df, p);
        hn::Store(Widen(da, v), da, dst + (e - e0));
      }
      break;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Micro-kernels: 4 weight rows x TB tokens over nvec vectors of one K chunk. The weight rows
// sit in the decode buffer (stride ws), the tokens in the packed inputs (stride xs).

// kFloat / kDouble: one vector accumulator per (row, token), kept in acc between chunks.
template <int TB, class DA>
HWY_INLINE void MicroPlain(DA da, const hn::TFromD<DA>* HWY_RESTRICT w, int64_t ws, const hn::TFromD<DA>* HWY_RESTRICT x,
                           int64_t xs, int64_t nvec, hn::TFromD<DA>* HWY_RESTRICT acc, int64_t acc_row_stride) {
  using V = hn::Vec<DA>;
  const int64_t N = static_cast<int64_t>(hn::Lanes(da));
  V a[4][TB];
  for (int r = 0; r < 4; ++r) {
    for (int t = 0; t < TB; ++t) a[r][t] = hn::Load(da, acc + r * acc_row_stride + t * N);
  }
  for (int64_t o = 0; o < nvec * N; o += N) {
    const V w0 = hn::Load(da, w + o), w1 = hn::Load(da, w + ws + o);
    const V w2 = hn::Load(da, w + 2 * ws + o), w3 = hn::Load(da, w + 3 * ws + o);
    for (int t = 0; t < TB; ++t) {
      const V xv = hn::Load(da, x + t * xs + o);
      a[0][t] = hn::MulAdd(w0, xv, a[0][t]);
      a[1][t] = hn::MulAdd(w1, xv, a[1][t]);
      a[2][t] = hn::MulAdd(w2, xv, a[2][t]);
      a[3][t] = hn::MulAdd(w3, xv, a[3][t]);
    }
  }
  for (int r = 0; r < 4; ++r) {
    for (int t = 0; t < TB; ++t) hn::Store(a[r][t], da, acc + r * acc_row_stride + t * N);
  }
}

// kDoubleBlocks: per scale block an exact partial sum, then total += partial * factor in K
// order (the product is exact, so fused or not gives the same).
template <int TB, class DA>
HWY_INLINE void MicroBlocks(DA da, const double* HWY_RESTRICT w, int64_t ws, const double* HWY_RESTRICT x, int64_t xs,
                            int64_t nvec, int64_t vec_per_block, const double* HWY_RESTRICT factors,
                            int64_t factor_stride, double* HWY_RESTRICT total, int64_t total_row_stride) {
  using V = hn::Vec<DA>;
  const int64_t N = static_cast<int64_t>(hn::Lanes(da));
  double sums[4][TB];
  for (int r = 0; r < 4; ++r) {
    for (int t = 0; t < TB; ++t) sums[r][t] = total[r * total_row_stride + t];
  }
  for (int64_t v0 = 0, blk = 0; v0 < nvec; v0 += vec_per_block, ++blk) {
    const int64_t v1 = std::min(nvec, v0 + vec_per_block);
    V a[4][TB];
    for (int r = 0; r < 4; ++r) {
      for (int t = 0; t < TB; ++t) a[r][t] = hn::Zero(da);
    }
    for (int64_t o = v0 * N; o < v1 * N; o += N) {
      const V w0 = hn::Load(da, w + o), w1 = hn::Load(da, w + ws + o);
      const V w2 = hn::Load(da, w + 2 * ws + o), w3 = hn::Load(da, w + 3 * ws + o);
      for (int t = 0; t < TB; ++t) {
        const V xv = hn::Load(da, x + t * xs + o);
        a[0][t] = hn::MulAdd(w0, xv, a[0][t]);
        a[1][t] = hn::MulAdd(w1, xv, a[1][t]);
        a[2][t] = hn::MulAdd(w2, xv, a[2][t]);
        a[3][t] = hn::MulAdd(w3, xv, a[3][t]);
      }
    }
    for (int r = 0; r < 4; ++r) {
      const double f = factors[r * factor_stride + blk];
      for (int t = 0; t < TB; ++t) {
        const double partial = hn::GetLane(hn::SumOfLanes(da, a[r][t]));
        sums[r][t] = sums[r][t] + partial * f;
      }
    }
  }
  for (int r = 0; r < 4; ++r) {
    for (int t = 0; t < TB; ++t) total[r * total_row_stride + t] = sums[r][t];
  }
}

// Tokens per micro-kernel call: 4 x 4 accumulators + 4 weight vectors need 21 of the 32
// AVX-512 registers; targets with 16 registers take 2 tokens.
constexpr int kTokenBlock = HWY_LANES(float) >= 16 ? 4 : 2;

struct TileScratch {
  AlignedBuffer weights, factors, acc;
};
TileScratch& tile_scratch() {
  thread_local TileScratch s;
  return s;
}

template <Accumulation kAcc, typename T>
void ComputeTilesT(const Problem& pb, int64_t tile_begin, int64_t tile_end) {
  const hn::ScalableTag<T> da;
  const int64_t N = static_cast<int64_t>(hn::Lanes(da));
  const WeightMatrix& w = *pb.w;
  const int64_t cols = w.cols, n = pb.n_tokens;
  // K chunk: 16 rows of decoded weights fill 32 KiB (L1) and are reused for every token.
  constexpr int64_t kChunk = sizeof(T) == 4 ? 512 : 256;
  const int64_t block = w.format == WeightFormat::kFp4 ? 32 : 128;  // scale block along K
  const int64_t blocks_per_chunk = kChunk / block;
  constexpr bool kBlocks = kAcc == Accumulation::kDoubleBlocks;
  const int64_t acc_row = kBlocks ? n : n * N;  // accumulator elements per tile row

  TileScratch& s = tile_scratch();
  T* wbuf = s.weights.get<T>(kRowTile * kChunk);
  double* fbuf = s.factors.get<double>(kRowTile * blocks_per_chunk);
  T* acc = s.acc.get<T>(kRowTile * acc_row);
  const T* x = static_cast<const T*>(pb.x);

  for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
    const int64_t r0 = tile * kRowTile;
    const int64_t rows_here = std::min(kRowTile, w.rows - r0);
    const int64_t rows_padded = (rows_here + 3) / 4 * 4;
    std::fill(acc, acc + kRowTile * acc_row, T(0));
    for (int64_t e0 = 0; e0 < cols; e0 += kChunk) {
      const int64_t e1 = std::min(cols, e0 + kChunk);
      const int64_t nvec = (e1 - e0 + N - 1) / N;
      for (int64_t r = 0; r < rows_padded; ++r) {
        T* dst = wbuf + r * kChunk;
        if (r < rows_here) {
          DecodeRowChunk<kAcc>(da, w, w.row_begin + r0 + r, e0, e1, dst, fbuf + r * blocks_per_chunk);
        } else {  // rows past the matrix: zero weights, outputs discarded
          std::fill(dst, dst + nvec * N, T(0));
          std::fill(fbuf + r * blocks_per_chunk, fbuf + (r + 1) * blocks_per_chunk, 0.0);
        }
      }
      for (int64_t t0 = 0; t0 < n; t0 += kTokenBlock) {
        const int64_t tb = std::min<int64_t>(kTokenBlock, n - t0);
        const T* xt = x + t0 * pb.x_stride + e0;
        for (int64_t r = 0; r < rows_padded; r += 4) {
          const T* wr = wbuf + r * kChunk;
          if constexpr (kBlocks) {
            const int64_t vpb = block / N;
            const double* f = fbuf + r * blocks_per_chunk;
            double* tot = acc + r * acc_row + t0;
            switch (tb) {
              case 1: MicroBlocks<1>(da, wr, kChunk, xt, pb.x_stride, nvec, vpb, f, blocks_per_chunk, tot, acc_row); break;
              case 2: MicroBlocks<2>(da, wr, kChunk, xt, pb.x_stride, nvec, vpb, f, blocks_per_chunk, tot, acc_row); break;
              case 3: MicroBlocks<3>(da, wr, kChunk, xt, pb.x_stride, nvec, vpb, f, blocks_per_chunk, tot, acc_row); break;
              default: MicroBlocks<kTokenBlock>(da, wr, kChunk, xt, pb.x_stride, nvec, vpb, f, blocks_per_chunk, tot, acc_row); break;
            }
          } else {
            T* a = acc + r * acc_row + t0 * N;
            switch (tb) {
              case 1: MicroPlain<1>(da, wr, kChunk, xt, pb.x_stride, nvec, a, acc_row); break;
              case 2: MicroPlain<2>(da, wr, kChunk, xt, pb.x_stride, nvec, a, acc_row); break;
              case 3: MicroPlain<3>(da, wr, kChunk, xt, pb.x_stride, nvec, a, acc_row); break;
              default: MicroPlain<kTokenBlock>(da, wr, kChunk, xt, pb.x_stride, nvec, a, acc_row); break;
            }
          }
        }
      }
    }
    // One rounding to FP32 (and BF16 where the reference outputs BF16).
    for (int64_t r = 0; r < rows_here; ++r) {
      for (int64_t t = 0; t < n; ++t) {
        T total;
        if constexpr (kBlocks) {
          total = acc[r * acc_row + t];
        } else {
          total = hn::GetLane(hn::SumOfLanes(da, hn::Load(da, acc + r * acc_row + t * N)));
        }
        const float out = static_cast<float>(total);
        pb.y[t * pb.ldy + r0 + r] = pb.bf16_output ? round_bf16(out) : out;
      }
    }
  }
}

void ComputeTiles(const Problem& pb, int64_t tile_begin, int64_t tile_end) {
  switch (pb.accumulation) {
    case Accumulation::kFloat:
      return ComputeTilesT<Accumulation::kFloat, float>(pb, tile_begin, tile_end);
    case Accumulation::kDouble:
      return ComputeTilesT<Accumulation::kDouble, double>(pb, tile_begin, tile_end);
    case Accumulation::kDoubleBlocks:
      return ComputeTilesT<Accumulation::kDoubleBlocks, double>(pb, tile_begin, tile_end);
  }
}

int64_t CurrentTarget() { return HWY_TARGET; }

}  // namespace HWY_NAMESPACE
}  // namespace dsv4::linear_kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace dsv4::linear_kernels {

HWY_EXPORT(ComputeTiles);
HWY_EXPORT(CurrentTarget);

bool supports(const WeightMatrix& w) {
  switch (w.format) {
    case WeightFormat::kFp8Block:
      return w.block == 128 && w.scale != nullptr;
    case WeightFormat::kFp4:
      return w.cols % 32 == 0 && w.scale != nullptr;
    case WeightFormat::kBf16:
    case WeightFormat::kF32:
      return true;
  }
  return false;
}

void compute_tiles(const Problem& problem, int64_t tile_begin, int64_t tile_end) {
  HWY_DYNAMIC_DISPATCH(ComputeTiles)(problem, tile_begin, tile_end);
}

std::vector<int64_t> available_targets() { return hwy::SupportedAndGeneratedTargets(); }

void force_target(int64_t target) { hwy::SetSupportedTargetsForTest(target); }

std::string target_name(int64_t target) { return hwy::TargetName(target); }

std::string current_target_name() { return hwy::TargetName(HWY_DYNAMIC_DISPATCH(CurrentTarget)()); }

}  // namespace dsv4::linear_kernels
#endif  // HWY_ONCE
