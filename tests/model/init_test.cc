// Random-model writer (`dsv4 init` library side): encoders round correctly, generated weights
// have the intended scales after quantisation, output is deterministic per seed and independent
// of threads / sharding, the written directory passes load_model, config.json round-trips, and
// the layout sizes reproduce the numbers of the real V4-Flash checkpoint.
#include "model/init.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "base/error.h"
#include "base/file.h"
#include "model/weights.h"
#include "ops/formats.h"
#include "ops/weight_matrix.h"

namespace fs = std::filesystem;
using namespace dsv4;

namespace {

// Independent reference decoders (written from the format definitions, not shared with the
// code under test).
double dec_e4m3(uint8_t c) {
  const double s = (c & 0x80) ? -1.0 : 1.0;
  const int e = (c >> 3) & 0xF, m = c & 7;
  if (e == 0) return s * m / 8.0 * std::ldexp(1.0, -6);
  return s * (1.0 + m / 8.0) * std::ldexp(1.0, e - 7);
}
double dec_e2m1(uint8_t c) {
  static const double t[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
  return (c & 8 ? -1.0 : 1.0) * t[c & 7];
}
double dec_e8m0(uint8_t c) { return std::ldexp(1.0, c - 127); }
float dec_bf16(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Brute-force round-to-nearest-even over a code table: the nearest value; on a tie the code
// with an even mantissa (even code).
template <typename Dec>
uint8_t brute_nearest(double x, int n_codes, Dec dec) {
  int best = -1;
  double bd = 1e300;
  for (int c = 0; c < n_codes; ++c) {
    double v = dec(static_cast<uint8_t>(c));
    if (std::isnan(v)) continue;
    double d = std::fabs(v - std::fabs(x));
    if (d < bd || (d == bd && (c % 2 == 0))) {
      bd = d;
      best = c;
    }
  }
  return static_cast<uint8_t>(best);
}

struct TempDir {
  fs::path dir;
  explicit TempDir(const std::string& tag) {
    static int n = 0;
    dir = fs::temp_directory_path() / ("dsv4_init_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
    fs::remove_all(dir);
  }
  ~TempDir() { fs::remove_all(dir); }
  std::string str() const { return dir.string(); }
};

TensorSpec spec_of(const ModelConfig& c, const std::string& name) {
  for (const auto& s : expected_tensors(c))
    if (s.name == name) return s;
  throw Error("no spec " + name);
}

std::vector<TensorData> gen(const ModelConfig& c, const std::string& weight, uint64_t seed, bool with_scale) {
  std::vector<TensorSpec> unit{spec_of(c, weight)};
  if (with_scale) unit.push_back(spec_of(c, weight.substr(0, weight.size() - 7) + ".scale"));
  return generate_tensors(c, unit, seed);
}

// Decoded matrix of an FP8 block-scaled weight.
std::vector<double> decode_fp8(const TensorData& w, const TensorData& s, int64_t block) {
  const int64_t out = w.shape[0], in = w.shape[1], sb = s.shape[1];
  std::vector<double> v(static_cast<size_t>(out * in));
  for (int64_t r = 0; r < out; ++r)
    for (int64_t c = 0; c < in; ++c)
      v[r * in + c] = dec_e4m3(w.bytes[r * in + c]) * dec_e8m0(s.bytes[(r / block) * sb + c / block]);
  return v;
}

std::vector<double> decode_fp4(const TensorData& w, const TensorData& s) {
  const int64_t out = w.shape[0], in = w.shape[1] * 2;
  std::vector<double> v(static_cast<size_t>(out * in));
  for (int64_t r = 0; r < out; ++r)
    for (int64_t c = 0; c < in; ++c) {
      uint8_t byte = w.bytes[r * (in / 2) + c / 2];
      uint8_t code = (c % 2 == 0) ? (byte & 0xF) : (byte >> 4);  // low nibble = even column
      v[r * in + c] = dec_e2m1(code) * dec_e8m0(s.bytes[r * (in / 32) + c / 32]);
    }
  return v;
}

void expect_row_std(const std::vector<double>& v, int64_t rows, int64_t cols, double want, double rel_tol) {
  double mean_std = 0, max_dev = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0, s2 = 0;
    for (int64_t c = 0; c < cols; ++c) {
      s += v[r * cols + c];
      s2 += v[r * cols + c] * v[r * cols + c];
    }
    const double m = s / cols, sd = std::sqrt(s2 / cols - m * m);
    mean_std += sd / rows;
    max_dev = std::max(max_dev, std::fabs(sd / want - 1));
  }
  EXPECT_NEAR(mean_std / want, 1.0, 0.03) << "mean per-row std " << mean_std << " vs " << want;
  EXPECT_LT(max_dev, rel_tol) << "a row's std deviates by " << max_dev;
}

ModelConfig flash_config() {
  // The real V4-Flash config.json values (spec 1.1) on top of the golden tiny-a config.
  auto j = nlohmann::json::parse(read_file(std::string(DSV4_TEST_DATA_DIR) + "/tiny-a/checkpoint/config.json"));
  j["hidden_size"] = 4096;
  j["num_hidden_layers"] = 43;
  j["num_attention_heads"] = 64;
  j["head_dim"] = 512;
  j["q_lora_rank"] = 1024;
  j["o_groups"] = 8;
  j["o_lora_rank"] = 1024;
  j["sliding_window"] = 128;
  std::vector<int> ratios{0, 0};
  for (int i = 0; i < 20; ++i) ratios.insert(ratios.end(), {4, 128});
  ratios.insert(ratios.end(), {4, 0});
  j["compress_ratios"] = ratios;
  j["index_n_heads"] = 64;
  j["index_head_dim"] = 128;
  j["index_topk"] = 512;
  j["n_routed_experts"] = 256;
  j["num_experts_per_tok"] = 6;
  j["moe_intermediate_size"] = 2048;
  j["num_hash_layers"] = 3;
  j["vocab_size"] = 129280;
  j["max_position_embeddings"] = 1048576;
  return parse_config(j.dump(), "flash");
}

void expect_same_config(const ModelConfig& a, const ModelConfig& b) {
#define SAME(f) EXPECT_EQ(a.f, b.f) << #f
  SAME(vocab_size); SAME(dim); SAME(n_layers); SAME(n_heads); SAME(head_dim); SAME(rope_dim);
  SAME(q_lora_rank); SAME(o_groups); SAME(o_lora_rank); SAME(window); SAME(compress_ratios);
  SAME(rope_theta); SAME(compress_rope_theta); SAME(rope_factor); SAME(original_seq_len);
  SAME(beta_fast); SAME(beta_slow); SAME(max_position_embeddings); SAME(index_n_heads);
  SAME(index_head_dim); SAME(index_topk); SAME(n_routed_experts); SAME(n_shared_experts);
  SAME(n_activated_experts); SAME(moe_inter_dim); SAME(n_hash_layers); SAME(route_scale);
  SAME(swiglu_limit); SAME(expert_format); SAME(hc_mult); SAME(hc_sinkhorn_iters); SAME(hc_eps);
  SAME(norm_eps); SAME(weight_block); SAME(n_mtp_layers); SAME(bos_token_id); SAME(eos_token_id);
#undef SAME
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Encoders
// ---------------------------------------------------------------------------------------------
TEST(InitCodec, E4m3MatchesBruteForceNearestEven) {
  std::vector<float> xs;
  // Every code value, every midpoint between neighbours (exact ties), and points just off them.
  for (int c = 0; c < 0x7F; ++c) {
    const double v = dec_e4m3(static_cast<uint8_t>(c)), nv = dec_e4m3(static_cast<uint8_t>(c + 1));
    xs.push_back(static_cast<float>(v));
    if (c + 1 < 0x7F) {
      const float mid = static_cast<float>((v + nv) / 2);
      xs.push_back(mid);
      xs.push_back(std::nextafter(mid, 0.0f));
      xs.push_back(std::nextafter(mid, 1000.0f));
    }
  }
  for (int i = 0; i < 20000; ++i) xs.push_back(std::ldexp(static_cast<float>((i * 7919) % 10007) / 10007.0f, (i % 20) - 12));
  for (float x : xs) {
    for (float sx : {x, -x}) {
      const uint8_t want = brute_nearest(sx, 0x7F, dec_e4m3) | (std::signbit(sx) ? 0x80 : 0);
      ASSERT_EQ(init_codec::f32_to_e4m3(sx), want) << "x = " << sx;
    }
  }
  EXPECT_EQ(init_codec::f32_to_e4m3(1e6f), 0x7E);    // saturates to 448
  EXPECT_EQ(init_codec::f32_to_e4m3(-460.f), 0xFE);  // -448
  EXPECT_EQ(init_codec::f32_to_e4m3(0.0f), 0x00);
}

TEST(InitCodec, E2m1MatchesBruteForceNearestEven) {
  for (int i = 0; i <= 7000; ++i) {
    const float x = i / 1000.0f;
    for (float sx : {x, -x}) {
      const uint8_t want = brute_nearest(sx, 8, dec_e2m1) | (std::signbit(sx) ? 8 : 0);
      ASSERT_EQ(init_codec::f32_to_e2m1(sx), want) << "x = " << sx;
    }
  }
  // The exact ties go to the even code: 0.25 -> 0, 0.75 -> 1.0, 1.25 -> 1.0, 1.75 -> 2, 2.5 -> 2, 3.5 -> 4, 5 -> 4.
  EXPECT_EQ(init_codec::f32_to_e2m1(0.25f), 0);
  EXPECT_EQ(init_codec::f32_to_e2m1(0.75f), 2);
  EXPECT_EQ(init_codec::f32_to_e2m1(1.25f), 2);
  EXPECT_EQ(init_codec::f32_to_e2m1(1.75f), 4);
  EXPECT_EQ(init_codec::f32_to_e2m1(2.5f), 4);
  EXPECT_EQ(init_codec::f32_to_e2m1(3.5f), 6);
  EXPECT_EQ(init_codec::f32_to_e2m1(5.0f), 6);
  EXPECT_EQ(init_codec::f32_to_e2m1(100.0f), 7);
}

TEST(InitCodec, Bf16RoundsToNearestEven) {
  EXPECT_EQ(init_codec::f32_to_bf16(1.0f), 0x3F80);
  // 1 + 2^-8 is exactly halfway between bf16 1.0 and 1.0078125: ties to the even mantissa (1.0).
  EXPECT_EQ(init_codec::f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);
  // 1 + 3 * 2^-8 is halfway between 1.0078125 (odd) and 1.015625 (even): rounds up.
  EXPECT_EQ(init_codec::f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3F82);
  EXPECT_EQ(init_codec::f32_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), 0x3F81);
  EXPECT_TRUE(std::isnan(dec_bf16(init_codec::f32_to_bf16(std::nanf("")))));
}

TEST(InitCodec, ScaleExponentIsTheSmallestPowerOfTwoThatFits) {
  for (float amax : {1e-4f, 0.01f, 0.5f, 1.0f, 3.0f, 6.0f, 7.0f, 448.0f, 449.0f, 1000.0f}) {
    for (float maxc : {6.0f, 448.0f}) {
      const int e = init_codec::scale_exponent(amax, maxc);
      EXPECT_LE(amax / std::ldexp(1.0, e), maxc) << amax << " " << maxc;
      EXPECT_GT(amax / std::ldexp(1.0, e - 1), maxc) << amax << " " << maxc;  // e - 1 would overflow
    }
  }
  EXPECT_EQ(init_codec::scale_exponent(448.0f, 448.0f), 0);
  EXPECT_EQ(init_codec::scale_exponent(12.0f, 6.0f), 1);
}

TEST(InitCodec, Fp4PacksEvenColumnsInTheLowNibble) {
  // Group 0 has amax 6 (scale 2^0), group 1 amax 12 (scale 2^1): values chosen on the grid.
  std::vector<float> x(64, 0.0f);
  x[0] = 0.5f;   // code 1, even column -> low nibble of byte 0
  x[1] = -3.0f;  // code 13, odd column -> high nibble of byte 0
  x[2] = 6.0f;
  x[33] = 12.0f;  // group 1, code 7 at scale 2
  x[34] = -1.0f;  // 1 / 2 = 0.5 -> code 9 (negative)
  std::vector<uint8_t> packed(32), scales(2);
  init_codec::quantize_fp4_row(x.data(), 64, packed.data(), scales.data());
  EXPECT_EQ(packed[0], 0xD1);
  EXPECT_EQ(packed[1], 0x07);
  EXPECT_EQ(packed[16], 0x70);
  EXPECT_EQ(packed[17], 0x09);
  EXPECT_EQ(scales[0], 127);
  EXPECT_EQ(scales[1], 128);
}

TEST(InitCodec, Fp8TilesHaveTheirOwnScales) {
  // 3 x 5 matrix with block 2: tiles (0,0) (0,1) (0,2) / (1,*) with a partial last row/column.
  const int64_t rows = 3, cols = 5, block = 2;
  std::vector<float> x(rows * cols, 0.0f);
  x[0 * cols + 0] = 448.0f;         // tile (0,0): scale 2^0, code 0x7E
  x[1 * cols + 3] = -0.5f * 448.0f;  // tile (0,1): amax 224 -> scale 2^-1, code 0xFE
  x[0 * cols + 4] = 900.0f;          // tile (0,2): amax 900 -> scale 2^2 (900/4 = 225)
  x[2 * cols + 1] = 1.0f;            // tile (1,0): scale 2^-8 (1 * 256 = 256 <= 448)
  std::vector<uint8_t> codes(rows * cols), scales(2 * 3);
  init_codec::quantize_fp8(x.data(), rows, cols, block, codes.data(), scales.data());
  EXPECT_EQ(scales[0], 127);
  EXPECT_EQ(scales[1], 126);
  EXPECT_EQ(scales[2], 129);
  EXPECT_EQ(scales[3], 127 - 8);
  EXPECT_EQ(codes[0], 0x7E);
  EXPECT_EQ(codes[1 * cols + 3], 0xFE);
  EXPECT_DOUBLE_EQ(dec_e4m3(codes[0 * cols + 4]) * 4, 896.0);  // 225 rounds to 224 on the E4M3 grid
  EXPECT_DOUBLE_EQ(dec_e4m3(codes[2 * cols + 1]), 256.0);
  EXPECT_EQ(scales[4], 127);  // all-zero tile: scale 1
}

TEST(InitCodec, AgreesWithTheOpsLayerEncoders) {
  // The writer keeps its own encoders (no dependency on the kernels); they must produce the
  // very codes the ops layer would.
  uint64_t st = 5;
  for (int i = 0; i < 200000; ++i) {
    st = st * 6364136223846793005ull + 1442695040888963407ull;
    const float u = static_cast<float>(st >> 40) / 16777216.0f - 0.5f;
    const float x = std::ldexp(u, static_cast<int>((st >> 20) % 30) - 18);
    ASSERT_EQ(init_codec::f32_to_e4m3(x * 1024), f32_to_e4m3(x * 1024)) << x * 1024;
    ASSERT_EQ(init_codec::f32_to_e2m1(x * 16), f32_to_e2m1(x * 16)) << x * 16;
    ASSERT_EQ(init_codec::f32_to_bf16(x), f32_to_bf16(x)) << x;
  }
}

TEST(InitGenerate, OpsDequantizationReadsTheGeneratedWeights) {
  // The ops layer's dequantize_rows (what the engine runs) decodes the generated FP8 / FP4
  // tensors to the same values as this file's independent decoders.
  const ModelConfig c = init_preset_config("tiny");
  for (const char* name : {"layers.1.attn.wq_b.weight", "layers.0.ffn.experts.3.w2.weight", "mtp.0.e_proj.weight"}) {
    auto t = gen(c, name, 21, true);
    WeightMatrix w;
    const bool fp4 = t[0].dtype == DType::I8;
    w.format = fp4 ? WeightFormat::kFp4 : WeightFormat::kFp8Block;
    w.data = t[0].bytes.data();
    w.scale = t[1].bytes.data();
    w.rows = w.total_rows = t[0].shape[0];
    w.cols = fp4 ? t[0].shape[1] * 2 : t[0].shape[1];
    w.block = c.weight_block;
    std::vector<float> got(static_cast<size_t>(w.rows * w.cols));
    dequantize_rows(w, 0, w.rows, got.data());
    const auto want = fp4 ? decode_fp4(t[0], t[1]) : decode_fp8(t[0], t[1], c.weight_block);
    for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(double(got[i]), want[i]) << name << " element " << i;
  }
}

// ---------------------------------------------------------------------------------------------
// Generated weights
// ---------------------------------------------------------------------------------------------
TEST(InitGenerate, Fp8WeightsHaveTheIntendedScaleAndTightBlockScales) {
  const ModelConfig c = init_preset_config("flash-scaled");
  for (const char* name : {"layers.2.attn.wq_b.weight", "layers.5.attn.wo_a.weight", "layers.7.ffn.shared_experts.w2.weight"}) {
    auto t = gen(c, name, 11, true);
    ASSERT_EQ(t.size(), 2u);
    ASSERT_EQ(t[0].dtype, DType::F8_E4M3);
    ASSERT_EQ(t[1].dtype, DType::F8_E8M0);
    const int64_t out = t[0].shape[0], in = t[0].shape[1];
    auto v = decode_fp8(t[0], t[1], c.weight_block);
    expect_row_std(v, out, in, 1.0 / std::sqrt(double(in)), 0.25);
    // Each block's scale is the smallest power of two that fits: its largest code is in [224, 448].
    const int64_t sb = t[1].shape[1];
    for (int64_t br = 0; br < t[1].shape[0]; ++br)
      for (int64_t bc = 0; bc < sb; ++bc) {
        double m = 0;
        for (int64_t r = br * 128; r < std::min(out, br * 128 + 128); ++r)
          for (int64_t cc = bc * 128; cc < std::min(in, bc * 128 + 128); ++cc)
            m = std::max(m, std::fabs(dec_e4m3(t[0].bytes[r * in + cc])));
        ASSERT_GE(m, 224.0) << name << " block " << br << "," << bc;
        ASSERT_LE(m, 448.0);
      }
  }
}

TEST(InitGenerate, Fp4ExpertWeightsHaveTheIntendedScale) {
  const ModelConfig c = init_preset_config("flash-scaled");
  for (const char* name : {"layers.0.ffn.experts.17.w1.weight", "layers.9.ffn.experts.200.w2.weight"}) {
    auto t = gen(c, name, 5, true);
    ASSERT_EQ(t[0].dtype, DType::I8);
    const int64_t out = t[0].shape[0], in = t[0].shape[1] * 2;
    auto v = decode_fp4(t[0], t[1]);
    // E2M1 with per-32 power-of-two scales: quantisation noise is a sizeable part of the
    // variance, so allow 15% per row.
    expect_row_std(v, out, in, 1.0 / std::sqrt(double(in)), 0.15);
    // Scales fit: every group's largest code value is above 3 (else a smaller scale would fit).
    for (int64_t r = 0; r < out; ++r)
      for (int64_t g = 0; g < in / 32; ++g) {
        double m = 0;
        for (int64_t k = 0; k < 32; ++k) {
          uint8_t byte = t[0].bytes[r * (in / 2) + (g * 32 + k) / 2];
          m = std::max(m, std::fabs(dec_e2m1(k % 2 ? byte >> 4 : byte & 0xF)));
        }
        ASSERT_GE(m, 3.0);
      }
  }
}

TEST(InitGenerate, OtherTensorsFollowTheirRules) {
  const ModelConfig c = init_preset_config("tiny");
  auto stats = [](const TensorData& t) {
    double s = 0, s2 = 0;
    const size_t n = t.bytes.size() / 2;
    for (size_t i = 0; i < n; ++i) {
      uint16_t b;
      std::memcpy(&b, t.bytes.data() + 2 * i, 2);
      const double v = dec_bf16(b);
      s += v;
      s2 += v * v;
    }
    const double m = s / n;
    return std::pair<double, double>(m, std::sqrt(s2 / n - m * m));
  };
  auto [em, es] = stats(gen(c, "embed.weight", 1, false)[0]);
  EXPECT_NEAR(em, 0.0, 0.01);
  EXPECT_NEAR(es, 1.0, 0.01);
  auto [nm, ns] = stats(gen(c, "layers.1.attn_norm.weight", 1, false)[0]);
  EXPECT_NEAR(nm, 1.0, 0.03);
  EXPECT_NEAR(ns, 0.1, 0.03);
  auto [gm, gs] = stats(gen(c, "layers.3.ffn.gate.weight", 1, false)[0]);
  EXPECT_NEAR(gs, 1.0 / std::sqrt(double(c.dim)), 0.1 / std::sqrt(double(c.dim)));

  auto f32 = [](const TensorData& t) {
    std::vector<float> v(t.bytes.size() / 4);
    std::memcpy(v.data(), t.bytes.data(), t.bytes.size());
    return v;
  };
  for (float s : f32(gen(c, "layers.0.attn.attn_sink", 1, false)[0])) {
    EXPECT_GE(s, 0.5f);
    EXPECT_LT(s, 2.5f);
  }
  // mHC comb biases favour the identity: the diagonal entries are the large ones.
  auto base = f32(gen(c, "layers.2.hc_ffn_base", 1, false)[0]);
  ASSERT_EQ(base.size(), size_t((2 + c.hc_mult) * c.hc_mult));
  for (int64_t j = 0; j < c.hc_mult; ++j)
    for (int64_t k = 0; k < c.hc_mult; ++k) {
      const float v = base[2 * c.hc_mult + j * c.hc_mult + k];
      if (j == k) EXPECT_GT(v, 3.0f);
      else EXPECT_LT(std::fabs(v), 1.0f);
    }
  for (float s : f32(gen(c, "layers.0.hc_attn_scale", 1, false)[0])) EXPECT_LT(std::fabs(s), 0.2f);

  auto tid = gen(c, "layers.1.ffn.gate.tid2eid", 1, false)[0];
  ASSERT_EQ(tid.dtype, DType::I64);
  const int64_t k = c.n_activated_experts;
  std::vector<int64_t> hist(c.n_routed_experts);
  for (int64_t r = 0; r < c.vocab_size; ++r) {
    std::set<int64_t> row;
    for (int64_t i = 0; i < k; ++i) {
      int64_t v;
      std::memcpy(&v, tid.bytes.data() + (r * k + i) * 8, 8);
      ASSERT_GE(v, 0);
      ASSERT_LT(v, c.n_routed_experts);
      row.insert(v);
      ++hist[v];
    }
    ASSERT_EQ(row.size(), size_t(k)) << "row " << r << " repeats an expert";
  }
  // Every expert gets roughly its share of tokens.
  const double share = double(c.vocab_size) * k / c.n_routed_experts;
  for (int64_t h : hist) EXPECT_NEAR(h / share, 1.0, 0.05);
}

TEST(InitGenerate, SeedDeterminesTheBytes) {
  const ModelConfig c = init_preset_config("tiny");
  auto a = gen(c, "layers.1.attn.wq_b.weight", 42, true);
  auto b = gen(c, "layers.1.attn.wq_b.weight", 42, true);
  auto d = gen(c, "layers.1.attn.wq_b.weight", 43, true);
  EXPECT_EQ(a[0].bytes, b[0].bytes);
  EXPECT_EQ(a[1].bytes, b[1].bytes);
  EXPECT_NE(a[0].bytes, d[0].bytes);
  // Different tensors of the same shape get different streams.
  auto e = gen(c, "layers.3.attn.wq_b.weight", 42, true);
  EXPECT_NE(a[0].bytes, e[0].bytes);
}

// ---------------------------------------------------------------------------------------------
// Presets, config, sizes
// ---------------------------------------------------------------------------------------------
TEST(InitConfig, HfJsonRoundTrips) {
  for (const auto& p : init_presets()) {
    SCOPED_TRACE(p.name);
    const ModelConfig c = init_preset_config(p.name);
    const std::string text = config_to_hf_json(c);
    expect_same_config(parse_config(text, p.name), c);
    auto j = nlohmann::json::parse(text);
    for (const char* key : {"architectures", "model_type", "num_key_value_heads", "quantization_config", "rope_scaling",
                            "scoring_func", "topk_method", "norm_topk_prob", "expert_dtype", "tie_word_embeddings", "torch_dtype"})
      EXPECT_TRUE(j.contains(key)) << key;
  }
  const ModelConfig f = flash_config();
  expect_same_config(parse_config(config_to_hf_json(f), "flash"), f);
  // A config read from the golden checkpoint survives too (values not from a preset).
  const ModelConfig g = load_config(std::string(DSV4_TEST_DATA_DIR) + "/tiny-a/checkpoint");
  expect_same_config(parse_config(config_to_hf_json(g), "g"), g);
}

TEST(InitConfig, PresetsHaveTheAdvertisedStructure) {
  const ModelConfig t = init_preset_config("tiny");
  EXPECT_EQ(t.vocab_size, 129280);
  std::set<int64_t> kinds(t.compress_ratios.begin(), t.compress_ratios.end());
  EXPECT_TRUE(kinds.count(0) && kinds.count(4) && kinds.size() >= 3) << "tiny mixes SWA, CSA and a heavy ratio";
  EXPECT_GT(t.n_hash_layers, 0);
  EXPECT_EQ(t.n_mtp_layers, 1);
  // Long-context like every V4 model (the default model serves agent prompts): Flash's 1M
  // positions and YaRN settings.
  const ModelConfig flash = official_config("flash");
  EXPECT_EQ(t.max_position_embeddings, flash.max_position_embeddings);
  EXPECT_EQ(t.max_position_embeddings, 1048576);
  EXPECT_EQ(t.original_seq_len, flash.original_seq_len);
  EXPECT_EQ(t.rope_factor, flash.rope_factor);

  const ModelConfig f = init_preset_config("flash-scaled");
  std::vector<int64_t> want{0, 0};
  for (int i = 0; i < 20; ++i) want.insert(want.end(), {4, 128});
  want.insert(want.end(), {4, 0});
  EXPECT_EQ(f.compress_ratios, want);
  EXPECT_EQ(f.n_routed_experts, 256);
  EXPECT_EQ(f.n_activated_experts, 6);
  EXPECT_EQ(f.n_hash_layers, 3);
  EXPECT_EQ(f.window, 128);
  EXPECT_EQ(f.head_dim, 512);
  EXPECT_EQ(f.rope_dim, 64);
  const ModelSizes z = model_sizes(f);
  EXPECT_GE(z.active_bytes, int64_t{1} << 30) << "flash-scaled is meant to read >= 1 GiB per token";
  EXPECT_LE(z.bytes, int64_t{8} << 30) << "flash-scaled must fit this machine's memory with room to spare";

  EXPECT_THROW(init_preset_config("huge"), Error);
  try {
    init_preset_config("nope");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tiny"), std::string::npos) << "the error lists the known presets";
  }
}

TEST(InitConfig, SizesOfTheFlashLayoutMatchTheRealCheckpoint) {
  // Spec 1.4 / 2.1: 69,187 tensors, 290,942,289,362 logical parameters, 159,609,485,896 bytes;
  // 12.74B activated parameters per token without embed and head.
  const ModelConfig f = flash_config();
  const ModelSizes z = model_sizes(f);
  EXPECT_EQ(z.tensors, 69187);
  EXPECT_EQ(z.params, 290942289362);
  EXPECT_EQ(z.bytes, 159609485896);
  const int64_t head = f.vocab_size * f.dim, embed_row = f.dim;
  EXPECT_NEAR((z.active_params - head - embed_row) / 1e9, 12.74, 0.005);
}

// ---------------------------------------------------------------------------------------------
// Whole directories
// ---------------------------------------------------------------------------------------------
TEST(InitWrite, TinyPresetLoadsAndIsDeterministic) {
  const ModelConfig c = init_preset_config("tiny");
  TempDir a("a"), b("b"), d("d");
  InitOptions o;
  o.seed = 7;
  o.tokenizer_gz = std::string(DSV4_ASSETS_DIR) + "/deepseek-v4-tokenizer.json.gz";
  InitResult ra = write_random_model(c, a.str(), o);
  EXPECT_EQ(ra.sizes.bytes, model_sizes(c).bytes);
  auto w = load_model(a.str());
  EXPECT_EQ(w->layers.size(), size_t(c.n_layers));
  EXPECT_EQ(w->mtp.size(), 1u);
  expect_same_config(w->config, c);
  // The bytes a decoded token reads, counted on the loaded tensors, are the layout's count.
  EXPECT_EQ(active_weight_bytes(*w), model_sizes(c).active_bytes);
  EXPECT_LT(active_weight_bytes(*w), model_sizes(c).bytes - model_sizes(c).mtp_bytes);

  // Same seed, other thread count and sharding: identical tensor bytes.
  InitOptions o2 = o;
  o2.threads = 3;
  o2.shard_bytes = 30 << 20;
  o2.tokenizer_gz.clear();
  InitResult rb = write_random_model(c, b.str(), o2);
  EXPECT_GT(rb.files.size(), 3u) << "expected several shards + index";
  for (const auto& f : rb.files) {
    if (f.find(".safetensors") == std::string::npos || f.find("index") != std::string::npos) continue;
    const auto size = fs::file_size(b.dir / f);
    const auto n = TensorStore::open_file((b.dir / f).string()).tensors().size();
    // Within the limit, unless one tensor alone (+ its scale) is larger (embed, head).
    EXPECT_TRUE(size <= static_cast<uintmax_t>(o2.shard_bytes) || n <= 2) << f << ": " << size << " bytes, " << n << " tensors";
  }
  EXPECT_TRUE(file_exists(b.str() + "/model.safetensors.index.json"));
  EXPECT_FALSE(file_exists(b.str() + "/tokenizer.json"));
  auto sa = TensorStore::open_dir(a.str());
  auto sb = TensorStore::open_dir(b.str());
  ASSERT_EQ(sa.tensors().size(), sb.tensors().size());
  for (const auto& [name, t] : sa.tensors()) {
    const Tensor& u = sb.get(name);
    ASSERT_EQ(t.nbytes, u.nbytes) << name;
    ASSERT_EQ(std::memcmp(t.data, u.data, t.nbytes), 0) << name << " differs between thread/shard settings";
  }
  load_model(b.str());

  // Same seed again in place (--force): the single file is byte-identical.
  const std::string first = read_file(a.str() + "/model.safetensors");
  InitOptions of = o;
  of.force = true;
  write_random_model(c, a.str(), of);
  EXPECT_TRUE(read_file(a.str() + "/model.safetensors") == first);

  // Another seed: every tensor with random values differs; the layout is the same. (Scale
  // tensors may coincide: block maxima of unit-variance draws land on the same exponents.)
  InitOptions o3 = o;
  o3.seed = 8;
  o3.tokenizer_gz.clear();
  write_random_model(c, d.str(), o3);
  auto sd = TensorStore::open_dir(d.str());
  int same = 0;
  for (const auto& [name, t] : sa.tensors()) {
    const Tensor& u = sd.get(name);
    ASSERT_EQ(t.nbytes, u.nbytes);
    if (name.size() > 6 && name.compare(name.size() - 6, 6, ".scale") == 0) continue;
    if (std::memcmp(t.data, u.data, t.nbytes) == 0) ++same;
  }
  EXPECT_EQ(same, 0);

  // The tokenizer is the shipped one, decompressed.
  const std::string tok = read_file(a.str() + "/tokenizer.json");
  EXPECT_EQ(tok, gunzip_file(o.tokenizer_gz));
  auto tj = nlohmann::json::parse(tok);
  EXPECT_TRUE(tj.contains("model"));
}

TEST(InitWrite, RefusesNonEmptyDirAndCleansStaleShardsWithForce) {
  const ModelConfig c = init_preset_config("tiny");
  TempDir t("force");
  fs::create_directories(t.dir);
  { std::ofstream(t.dir / "notes.txt") << "keep me"; }
  InitOptions o;
  o.seed = 1;
  o.shard_bytes = 30 << 20;
  EXPECT_THROW(write_random_model(c, t.str(), o), Error);
  EXPECT_FALSE(file_exists(t.str() + "/config.json")) << "nothing written after a refusal";
  o.force = true;
  write_random_model(c, t.str(), o);  // sharded
  o.shard_bytes = int64_t{1} << 30;
  write_random_model(c, t.str(), o);  // now a single file: old shards and index must go
  EXPECT_FALSE(file_exists(t.str() + "/model.safetensors.index.json"));
  int shards = 0;
  for (const auto& e : fs::directory_iterator(t.dir))
    if (e.path().extension() == ".safetensors") ++shards;
  EXPECT_EQ(shards, 1);
  EXPECT_TRUE(file_exists(t.str() + "/notes.txt")) << "--force replaces model files only";
  load_model(t.str());
  // No temp files left behind.
  for (const auto& e : fs::directory_iterator(t.dir)) EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos);
}

TEST(InitWrite, BadInputsFailClearly) {
  EXPECT_THROW(gunzip_file("/nonexistent/tok.json.gz"), Error);
  TempDir t("bad");
  fs::create_directories(t.dir);
  // A truncated gzip stream must fail (not yield a silently short tokenizer).
  { std::ofstream(t.dir / "trunc.gz", std::ios::binary) << std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\x4b\x4c", 12); }
  EXPECT_THROW(gunzip_file((t.dir / "trunc.gz").string()), Error);
  { std::ofstream(t.dir / "plain.gz") << "{\"not\": \"gzip\"}"; }
  EXPECT_THROW(gunzip_file((t.dir / "plain.gz").string()), Error);
  const ModelConfig c = init_preset_config("tiny");
  InitOptions o;
  o.tokenizer_gz = "/nonexistent/tok.json.gz";
  TempDir out("bad_out");
  EXPECT_THROW(write_random_model(c, out.str(), o), Error);
  // A file where the directory should be.
  std::ofstream(t.dir / "file") << "x";
  InitOptions o2;
  EXPECT_THROW(write_random_model(c, (t.dir / "file").string(), o2), Error);
}
