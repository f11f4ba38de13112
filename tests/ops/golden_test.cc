// Teacher-forced checks of the ops against the tiny-a golden intermediates: the per-token KV
// entry (attn_norm -> wkv -> kv_norm -> RoPE / FP8 simulation), the router scores, and the
// mHC pre weights and Sinkhorn combination matrix of layer 0.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "model/safetensors.h"
#include "ops/formats.h"
#include "ops/linear.h"
#include "ops/math.h"
#include "ops/norm.h"
#include "ops/quant_sim.h"
#include "ops/rope.h"
#include "ops/sinkhorn.h"

namespace dsv4 {
namespace {

const std::string kTinyA = std::string(DSV4_TEST_DATA_DIR) + "/tiny-a";

const TensorStore& checkpoint() {
  static const TensorStore s = TensorStore::open_dir(kTinyA + "/checkpoint");
  return s;
}

// `prefix`.weight (and `prefix`.scale for FP8), or the tensor `prefix` itself when unsuffixed.
WeightMatrix matrix(const std::string& prefix) {
  const Tensor* found = checkpoint().find(prefix + ".weight");
  const Tensor& t = found ? *found : checkpoint().get(prefix);
  WeightMatrix w;
  w.data = t.data;
  w.rows = w.total_rows = t.dim(0);
  w.cols = t.dim(1);
  switch (t.dtype) {
    case DType::F8_E4M3:
      w.format = WeightFormat::kFp8Block;
      w.scale = checkpoint().get(prefix + ".scale").data;
      break;
    case DType::BF16:
      w.format = WeightFormat::kBf16;
      break;
    case DType::F32:
      w.format = WeightFormat::kF32;
      break;
    default:
      ADD_FAILURE() << "unexpected dtype of " << prefix;
  }
  return w;
}

std::vector<uint16_t> bf16_vector(const std::string& name) {
  const Tensor& t = checkpoint().get(name);
  EXPECT_EQ(t.dtype, DType::BF16);
  std::vector<uint16_t> v(static_cast<size_t>(t.numel()));
  std::memcpy(v.data(), t.data, t.nbytes);
  return v;
}

struct Compare {
  double rel_fro = 0;      // ||got - want|| / ||want||
  double max_abs = 0;
  double exact_frac = 0;   // fraction of bit-identical elements
};

Compare compare(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  Compare c;
  int64_t exact = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double d = double(got[i]) - want[i];
    num += d * d;
    den += double(want[i]) * want[i];
    c.max_abs = std::max(c.max_abs, std::fabs(d));
    exact += got[i] == want[i];
  }
  c.rel_fro = std::sqrt(num / den);
  c.exact_frac = double(exact) / double(got.size());
  return c;
}

RopeTable rope_for_layer(int layer) {
  RopeParams p;
  p.rope_dim = 64;
  if (layer == 0) {
    p.theta = 10000.0;  // SWA layer: plain RoPE
  } else {
    p.theta = 160000.0;  // compressed layers: compress_rope_theta with YaRN
    p.yarn = true;
    p.factor = 16.0;
    p.original_seq_len = 65536;
  }
  return make_rope_table(p);
}

std::vector<float> kv_entries(const TensorStore& debug, int layer, Numerics numerics) {
  const std::string L = "layers." + std::to_string(layer);
  const std::vector<float> x = debug.read_f32(L + ".attn_in");
  const int64_t dim = 256, head_dim = 192, rope_dim = 64;
  const int64_t S = static_cast<int64_t>(x.size()) / dim;
  std::vector<float> xn(x.size());
  const std::vector<uint16_t> attn_norm = bf16_vector(L + ".attn_norm.weight");
  rms_norm(x.data(), S, dim, attn_norm.data(), 1e-6, xn.data(), numerics);
  std::vector<float> kv(static_cast<size_t>(S * head_dim));
  linear(matrix(L + ".attn.wkv"), xn.data(), dim, S, kv.data(), head_dim, numerics);
  const std::vector<uint16_t> kv_norm = bf16_vector(L + ".attn.kv_norm.weight");
  rms_norm(kv.data(), S, head_dim, kv_norm.data(), 1e-6, kv.data(), numerics);
  const RopeTable rope = rope_for_layer(layer);
  for (int64_t t = 0; t < S; ++t) {
    float* row = kv.data() + t * head_dim;
    apply_rope(row + head_dim - rope_dim, t, rope, false, numerics);
    if (numerics == Numerics::kReference) fp8_simulate(row, head_dim - rope_dim, 64);
  }
  return kv;
}

TEST(Golden, KvEntryReference) {
  const TensorStore debug = TensorStore::open_file(kTinyA + "/reference/debug_seq1.safetensors");
  for (int layer = 0; layer < 3; ++layer) {
    SCOPED_TRACE(layer);
    const std::vector<float> want = debug.read_f32("layers." + std::to_string(layer) + ".attn.kv");
    const Compare c = compare(kv_entries(debug, layer, Numerics::kReference), want);
    // Teacher-forced reference numerics: almost every element matches to the last bit.
    EXPECT_LT(c.rel_fro, 1e-3);
    EXPECT_GT(c.exact_frac, 0.999) << "rel " << c.rel_fro << " max " << c.max_abs;
  }
}

TEST(Golden, KvEntryPrecise) {
  const TensorStore debug = TensorStore::open_file(kTinyA + "/precise/debug_seq1.safetensors");
  for (int layer = 0; layer < 3; ++layer) {
    SCOPED_TRACE(layer);
    const std::vector<float> want = debug.read_f32("layers." + std::to_string(layer) + ".attn.kv");
    float amax = 0;
    for (float v : want) amax = std::max(amax, std::fabs(v));
    const Compare c = compare(kv_entries(debug, layer, Numerics::kPrecise), want);
    EXPECT_LT(c.max_abs, 1e-5 * amax) << "rel " << c.rel_fro;
  }
}

TEST(Golden, RouterScores) {
  for (const char* mode : {"reference", "precise"}) {
    SCOPED_TRACE(mode);
    const Numerics numerics = std::string(mode) == "reference" ? Numerics::kReference : Numerics::kPrecise;
    const TensorStore debug = TensorStore::open_file(kTinyA + "/" + mode + "/debug_seq1.safetensors");
    for (int layer = 0; layer < 3; ++layer) {
      const std::string L = "layers." + std::to_string(layer);
      const std::vector<float> x = debug.read_f32(L + ".ffn_in");
      const int64_t dim = 256, S = static_cast<int64_t>(x.size()) / dim, E = 6;
      std::vector<float> xn(x.size());
      const std::vector<uint16_t> ffn_norm = bf16_vector(L + ".ffn_norm.weight");
      rms_norm(x.data(), S, dim, ffn_norm.data(), 1e-6, xn.data(), numerics);
      std::vector<float> scores(static_cast<size_t>(S * E));
      linear(matrix(L + ".ffn.gate"), xn.data(), dim, S, scores.data(), E, numerics, LinearCompute::kFp32);
      for (float& s : scores) s = sqrt_f32(softplus_f32(s));
      const Compare c = compare(scores, debug.read_f32(L + ".ffn.gate.scores"));
      EXPECT_LT(c.max_abs, 1e-5) << layer;
      if (numerics == Numerics::kReference) {
        EXPECT_GT(c.exact_frac, 0.999) << layer;
      }
    }
  }
}

// mHC of the attention sublayer of layer 0, whose input streams are 4 copies of the embedding.
TEST(Golden, HcPreAndSinkhornComb) {
  for (const char* mode : {"reference", "precise"}) {
    SCOPED_TRACE(mode);
    const TensorStore debug = TensorStore::open_file(kTinyA + "/" + mode + "/debug_seq1.safetensors");
    const std::vector<float> embed = debug.read_f32("embed");
    const std::vector<float> want_pre = debug.read_f32("layers.0.hc_attn.pre");
    const std::vector<float> want_comb = debug.read_f32("layers.0.hc_attn.comb");
    const std::vector<float> base = checkpoint().read_f32("layers.0.hc_attn_base");
    const std::vector<float> alpha = checkpoint().read_f32("layers.0.hc_attn_scale");
    const int64_t dim = 256, hc = 4, S = static_cast<int64_t>(embed.size()) / dim, mix = 24;
    std::vector<float> flat(static_cast<size_t>(S * hc * dim));
    for (int64_t t = 0; t < S; ++t) {
      for (int64_t j = 0; j < hc; ++j) {
        std::memcpy(&flat[static_cast<size_t>((t * hc + j) * dim)], &embed[static_cast<size_t>(t * dim)], dim * 4);
      }
    }
    std::vector<float> mu(static_cast<size_t>(S * mix));
    linear(matrix("layers.0.hc_attn_fn"), flat.data(), hc * dim, S, mu.data(), mix, Numerics::kReference,
           LinearCompute::kFp32);
    std::vector<float> pre, comb;
    for (int64_t t = 0; t < S; ++t) {
      double ss = 0;
      for (int64_t i = 0; i < hc * dim; ++i) {
        const float v = flat[static_cast<size_t>(t * hc * dim + i)];
        ss += static_cast<double>(v * v);
      }
      const float rho = rsqrt_f32(static_cast<float>(ss / double(hc * dim)) + 1e-6f);
      float* m = &mu[static_cast<size_t>(t * mix)];
      for (int64_t i = 0; i < mix; ++i) m[i] *= rho;
      for (int64_t j = 0; j < hc; ++j) pre.push_back(sigmoid_f32(alpha[0] * m[j] + base[static_cast<size_t>(j)]) + 1e-6f);
      float M[16];
      for (int64_t i = 0; i < 16; ++i) M[i] = alpha[2] * m[8 + i] + base[static_cast<size_t>(8 + i)];
      sinkhorn_project(M, 4, 20, 1e-6f);
      comb.insert(comb.end(), M, M + 16);
    }
    const Compare cp = compare(pre, want_pre);
    const Compare cc = compare(comb, want_comb);
    // Most entries bit-identical (the rest differ by an ulp, from the mixes' own rounding).
    EXPECT_GT(cp.exact_frac, 0.9);
    EXPECT_LT(cp.max_abs, 1e-6);
    EXPECT_LT(cc.max_abs, 1e-6);
    EXPECT_GT(cc.exact_frac, 0.8) << "max " << cc.max_abs;
  }
}

}  // namespace
}  // namespace dsv4
