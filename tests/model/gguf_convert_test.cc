// `dsv4 convert` (convert_to_gguf) on the golden tiny-a checkpoint: the lossless GGUF (BF16 dense,
// MXFP4 experts, MTP sidecar) gives the safetensors model's logits (reference: identical bits;
// precise: within 1e-5) and holds the same tensor bytes as the independently written fixture
// (tests/data/gguf/tiny-a.gguf); BF16 experts are lossless too; Q8_0 loads and stays close;
// the int8 mode on it stays close to precise; Q4_K / Q2_K convert within their expected error;
// unsupported targets are errors naming the tensor.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <cstdlib>
#include <filesystem>

#include "ops/int8_dot.h"
#include "base/error.h"
#include "base/file.h"
#include "golden.h"
#include "model/forward.h"
#include "model/gguf.h"
#include "model/gguf_convert.h"
#include "model/gguf_model.h"
#include "model/mtp.h"

using namespace dsv4;
using namespace dsv4::test;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path dir = fs::temp_directory_path() / ("dsv4_convert_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(dir); }
  ~TempDir() { fs::remove_all(dir); }
  std::string path(const std::string& f) const { return (dir / f).string(); }
};

std::shared_ptr<const ModelWeights> st_model() {
  static auto w = load_model(kTinyA + "/checkpoint");
  return w;
}

struct Logits {
  std::vector<float> main, mtp;
};
Logits run(const ModelWeights& w, Numerics nm, const std::vector<int64_t>& tokens, bool with_mtp) {
  const ModelConfig& c = w.config;
  const int64_t N = static_cast<int64_t>(tokens.size());
  SequenceState st(c, nm);
  Logits out;
  out.main.resize(static_cast<size_t>(N * c.vocab_size));
  std::vector<float> streams(static_cast<size_t>(N * c.hc_mult * c.dim));
  ForwardOutput fo;
  fo.logits = out.main.data();
  fo.all_logits = true;
  fo.final_streams = streams.data();
  forward(w, st, tokens.data(), N, fo);
  if (with_mtp) {
    out.mtp.resize(static_cast<size_t>((N - 1) * c.vocab_size));
    mtp_forward(w, st, streams.data(), tokens.data() + 1, N - 1, out.mtp.data(), true, nullptr, nullptr);
  }
  return out;
}

// tiny-a with Q8_0 dense weights (and the default MXFP4 experts), converted and loaded.
auto convert_q8_0(const TempDir& d) {
  GgufConvertOptions o;
  o.dense_type = GgmlType::Q8_0;
  convert_to_gguf(*st_model(), GgufVocab{}, d.path("tiny-q8.gguf"), o);
  return load_gguf_model(d.path("tiny-q8.gguf"));
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

TEST(GgufConvert, LosslessGgufGivesTheSameLogits) {
  TempDir d;
  GgufConvertOptions o;
  o.mtp_out = d.path("tiny-mtp.gguf");
  int64_t last_done = -1, last_total = 0;
  const GgufConvertReport r = convert_to_gguf(*st_model(), GgufVocab{}, d.path("tiny.gguf"), o, [&](int64_t done, int64_t total) {
    EXPECT_GE(done, last_done);
    last_done = done;
    last_total = total;
  });
  EXPECT_EQ(last_done, last_total);
  EXPECT_GT(r.mtp_tensors, 0);
  EXPECT_FALSE(fs::exists(d.path("tiny.gguf.tmp." + std::to_string(::getpid()))));

  // Same tensor bytes as the fixture written by make_tiny_gguf.py (an independent writer).
  const GgufFile ours = GgufFile::open(d.path("tiny.gguf"));
  const GgufFile fixture = GgufFile::open(std::string(DSV4_TEST_DATA_DIR) + "/gguf/tiny-a.gguf");
  ASSERT_EQ(ours.tensors().size(), fixture.tensors().size());
  EXPECT_EQ(r.tensors, static_cast<int64_t>(fixture.tensors().size()));
  for (const auto& [name, t] : fixture.tensors()) {
    const GgufTensor* u = ours.find_tensor(name);
    ASSERT_NE(u, nullptr) << name;
    EXPECT_EQ(u->type, t.type) << name;
    EXPECT_EQ(u->ne, t.ne) << name;
    ASSERT_EQ(u->nbytes, t.nbytes) << name;
    EXPECT_EQ(std::memcmp(u->data, t.data, static_cast<size_t>(t.nbytes)), 0) << name;
  }

  auto g = load_gguf_model(d.path("tiny.gguf"), d.path("tiny-mtp.gguf"));
  for (const char* seq : {"seq0", "seq1"}) {
    const auto tokens = seq_tokens(seq);
    const Logits a = run(*st_model(), Numerics::kReference, tokens, true);
    const Logits b = run(*g, Numerics::kReference, tokens, true);
    EXPECT_TRUE(same_bits(a.main, b.main)) << seq << " max |diff| " << diff(a.main, b.main).max_abs;
    EXPECT_TRUE(same_bits(a.mtp, b.mtp)) << seq << " mtp max |diff| " << diff(a.mtp, b.mtp).max_abs;
    const Logits pa = run(*st_model(), Numerics::kPrecise, tokens, true);
    const Logits pb = run(*g, Numerics::kPrecise, tokens, true);
    EXPECT_LE(diff(pa.main, pb.main).max_abs, 1e-5) << seq;
    EXPECT_LE(diff(pa.mtp, pb.mtp).max_abs, 1e-5) << seq;
  }
}

TEST(GgufConvert, Bf16ExpertsAreLosslessToo) {
  TempDir d;
  GgufConvertOptions o;
  o.expert_type = GgmlType::BF16;
  o.overrides = {{"attn_q_b", GgmlType::F32}};
  convert_to_gguf(*st_model(), GgufVocab{}, d.path("tiny.gguf"), o);
  auto g = load_gguf_model(d.path("tiny.gguf"));
  EXPECT_EQ(g->layers[0].ffn.experts[0].w1.ggml_type, GgmlType::BF16);
  EXPECT_EQ(g->layers[1].attn.wq_b.ggml_type, GgmlType::F32);
  const auto tokens = seq_tokens("seq0");
  EXPECT_TRUE(same_bits(run(*st_model(), Numerics::kReference, tokens, false).main, run(*g, Numerics::kReference, tokens, false).main));
}

TEST(GgufConvert, Q8_0LoadsAndStaysClose) {
  TempDir d;
  auto g = convert_q8_0(d);
  EXPECT_EQ(g->layers[0].attn.wq_a.ggml_type, GgmlType::Q8_0);
  EXPECT_EQ(g->layers[0].attn.wq_a.format, WeightFormat::kGgml);
  // Q8_0 keeps each weight within half a step d = max|block| / 127, plus |q| <= 127 times the F16
  // rounding of d (relative 2^-11): 0.5 d + 127 * 2^-11 d < 0.57 d.
  const WeightMatrix a = st_model()->layers[0].attn.wq_a.matrix(), b = g->layers[0].attn.wq_a.matrix();
  std::vector<float> x(static_cast<size_t>(a.rows * a.cols)), y(x.size());
  dequantize_rows(a, 0, a.rows, x.data());
  dequantize_rows(b, 0, b.rows, y.data());
  for (size_t blk = 0; blk < x.size() / 32; ++blk) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[blk * 32 + j]));
    for (int j = 0; j < 32; ++j) ASSERT_LE(std::fabs(x[blk * 32 + j] - y[blk * 32 + j]), amax / 127 * 0.57f + 1e-30f) << blk;
  }
  const auto tokens = seq_tokens("seq0");
  const Logits p = run(*st_model(), Numerics::kPrecise, tokens, false), q = run(*g, Numerics::kPrecise, tokens, false);
  const Diff dd = diff(q.main, p.main);
  std::printf("q8_0 dense vs checkpoint (precise): max |diff| %.3g, rel %.3g\n", dd.max_abs, dd.rel_fro);
  EXPECT_LT(dd.rel_fro, 0.05);
}

// The int8 numerics mode on that file (Q8_0 dense, MXFP4 experts): its logits stay as close to
// the precise mode's as Q8_0's weight rounding keeps them to the checkpoint's (the test above,
// same bound): the activations are rounded on the same grid (step max|block| / 127) as Q8_0
// rounds the weights. The greedy choice agrees on most positions, and a token gets the same bits
// alone or in the prompt batch.
// The int8 mode on a converted model: close to the precise mode (the Q8_0 test's bound on the
// weights' own rounding), greedy tokens mostly the same, and each token's logits have the
// prompt batch's bits when fed one at a time.
void check_int8_mode(const ModelWeights& model, const char* what) {
  const ModelWeights* g = &model;
  const auto tokens = seq_tokens("seq0");
  const Logits p = run(*g, Numerics::kPrecise, tokens, false), q = run(*g, Numerics::kInt8, tokens, false);
  const Diff dd = diff(q.main, p.main);
  const int64_t V = g->config.vocab_size, N = static_cast<int64_t>(tokens.size());
  int64_t agree = 0;
  for (int64_t t = 0; t < N; ++t) {
    const auto* a = p.main.data() + t * V;
    const auto* b = q.main.data() + t * V;
    agree += std::max_element(a, a + V) - a == std::max_element(b, b + V) - b;
  }
  std::printf("int8 vs precise on the %s GGUF: max |diff| %.3g, rel %.3g, argmax agrees at %lld of %lld\n", what,
              dd.max_abs, dd.rel_fro, static_cast<long long>(agree), static_cast<long long>(N));
  EXPECT_GT(dd.max_abs, 0.0f);  // the mode is really on
  EXPECT_LT(dd.rel_fro, 0.05);
  EXPECT_GE(agree * 10, N * 9);
  // Token by token: the prompt batch's bits.
  SequenceState st(g->config, Numerics::kInt8);
  std::vector<float> one(static_cast<size_t>(V));
  for (int64_t t = 0; t < N; ++t) {
    ForwardOutput fo;
    fo.logits = one.data();
    forward(*g, st, tokens.data() + t, 1, fo);
    ASSERT_EQ(std::memcmp(one.data(), q.main.data() + t * V, static_cast<size_t>(V) * 4), 0) << "position " << t;
  }
}

TEST(GgufConvert, Int8ModeOnQ8_0StaysCloseAndIsBatchInvariant) {
  TempDir d;
  auto g = convert_q8_0(d);
  EXPECT_EQ(g->layers[0].ffn.experts[0].w1.ggml_type, GgmlType::MXFP4);
  check_int8_mode(*g, "q8_0 + mxfp4");
}

// Q2_K experts (gate / up; the tiny model's down rows are shorter than a super-block) and
// attention through the int8 kernels.
TEST(GgufConvert, Int8ModeOnQ2_KStaysCloseAndIsBatchInvariant) {
  TempDir d;
  GgufConvertOptions o;
  o.dense_type = GgmlType::Q8_0;
  o.overrides = {{"ffn_(gate|up)_exps", GgmlType::Q2_K}, {"attn_(q_a|kv)\\.", GgmlType::Q2_K}};
  convert_to_gguf(*st_model(), GgufVocab{}, d.path("tiny-q2.gguf"), o);
  auto g = load_gguf_model(d.path("tiny-q2.gguf"));
  EXPECT_EQ(g->layers[0].ffn.experts[0].w1.ggml_type, GgmlType::Q2_K);
  EXPECT_TRUE(int8_dot::supports(g->layers[0].ffn.experts[0].w1.matrix()));
  check_int8_mode(*g, "q2_k + q8_0");
}

// Q4_K experts (gate / up) and Q2_K attention (q_a, kv) through convert (which checks every
// tensor on read-back before the file takes its name), load and decode: each converted row is
// exactly what quantize_ggml makes of the official row, and the weight error is within the
// format's expected error: an affine b-bit grid per sub-block of n values has a step of about
// range / (2^b - 1), range ~ 4.1 sigma for n = 32 and 3.5 sigma for n = 16 (normal samples), so
// a relative RMS error near step / sqrt(12): 0.08 for Q4_K, 0.34 for Q2_K (the searched fit
// does a little better; FP4 expert values are coarser than normal, hence the margin).
TEST(GgufConvert, Q4KAndQ2KConvertWithinTheirError) {
  TempDir d;
  GgufConvertOptions o;
  o.overrides = {{"ffn_(gate|up)_exps", GgmlType::Q4_K}, {"attn_(q_a|kv)\\.", GgmlType::Q2_K}};
  const GgufConvertReport r = convert_to_gguf(*st_model(), GgufVocab{}, d.path("tiny-k.gguf"), o);
  EXPECT_GT(r.tensors, 0);
  auto g = load_gguf_model(d.path("tiny-k.gguf"));
  struct Case {
    WeightMatrix a, b;
    GgmlType type;
    double max_rel;
  };
  std::vector<Case> cases;
  for (size_t l = 0; l < g->layers.size(); ++l) {
    const auto& la = st_model()->layers[l];
    const auto& lb = g->layers[l];
    cases.push_back({la.attn.wq_a.matrix(), lb.attn.wq_a.matrix(), GgmlType::Q2_K, 0.4});
    cases.push_back({la.attn.wkv.matrix(), lb.attn.wkv.matrix(), GgmlType::Q2_K, 0.4});
    for (size_t e = 0; e < lb.ffn.experts.size(); ++e) {
      cases.push_back({la.ffn.experts[e].w1.matrix(), lb.ffn.experts[e].w1.matrix(), GgmlType::Q4_K, 0.1});
      cases.push_back({la.ffn.experts[e].w3.matrix(), lb.ffn.experts[e].w3.matrix(), GgmlType::Q4_K, 0.1});
    }
  }
  double worst[2] = {0, 0};
  for (const Case& c : cases) {
    ASSERT_EQ(c.b.format, WeightFormat::kGgml);
    ASSERT_EQ(c.b.ggml_type, c.type);
    ASSERT_EQ(c.a.rows, c.b.rows);
    ASSERT_EQ(c.a.cols, c.b.cols);
    std::vector<float> x(static_cast<size_t>(c.a.rows * c.a.cols)), y(x.size()), z(static_cast<size_t>(c.a.cols));
    dequantize_rows(c.a, 0, c.a.rows, x.data());
    dequantize_rows(c.b, 0, c.b.rows, y.data());
    std::vector<uint8_t> q(static_cast<size_t>(ggml_row_bytes(c.type, c.a.cols)));
    for (int64_t row = 0; row < c.a.rows; ++row) {
      quantize_ggml(c.type, x.data() + row * c.a.cols, c.a.cols, q.data());
      dequantize_ggml(c.type, q.data(), c.a.cols, z.data());
      ASSERT_EQ(std::memcmp(z.data(), y.data() + row * c.a.cols, z.size() * 4), 0) << row;
    }
    const Diff dd = diff(y, x);
    worst[c.type == GgmlType::Q4_K] = std::max(worst[c.type == GgmlType::Q4_K], dd.rel_fro);
    EXPECT_LT(dd.rel_fro, c.max_rel) << ggml_type_name(static_cast<uint32_t>(c.type));
  }
  std::printf("relative weight error: q4_K experts %.3g, q2_K attention %.3g\n", worst[1], worst[0]);
  const auto tokens = seq_tokens("seq0");
  const Logits p = run(*st_model(), Numerics::kPrecise, tokens, false), q = run(*g, Numerics::kPrecise, tokens, false);
  const Diff dl = diff(q.main, p.main);
  std::printf("q4_K / q2_K mix vs checkpoint (precise): max |diff| %.3g, rel %.3g\n", dl.max_abs, dl.rel_fro);
  for (float v : q.main) ASSERT_TRUE(std::isfinite(v));
}

TEST(GgufConvert, UnsupportedTargetsAreErrors) {
  TempDir d;
  auto err = [&](const GgufConvertOptions& o) {
    try {
      convert_to_gguf(*st_model(), GgufVocab{}, d.path("x.gguf"), o);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  GgufConvertOptions o;
  o.dense_type = GgmlType::IQ2_XXS;
  EXPECT_NE(err(o).find("token_embd.weight: type iq2_xxs is not a convert target"), std::string::npos) << err(o);
  o = GgufConvertOptions{};
  o.overrides = {{"attn_kv", GgmlType::MXFP4}};
  EXPECT_NE(err(o).find("blk.0.attn_kv.weight: mxfp4 is only written from FP4 experts"), std::string::npos) << err(o);
  EXPECT_FALSE(fs::exists(d.path("x.gguf")));
  EXPECT_EQ(parse_ggml_type("Q8_0"), GgmlType::Q8_0);
  EXPECT_THROW(parse_ggml_type("q9_0"), Error);
}

}  // namespace

namespace {

// End to end through the binary: `dsv4 init` (official layout with tokenizer.json) ->
// `dsv4 convert` -> `dsv4 run -m FILE.gguf` (mapped, and with --no-mmap) gives the same greedy
// text as `-m DIR`.
TEST(GgufConvertCli, RunOnTheGgufMatchesTheDirectory) {
  TempDir d;
  const std::string bin = DSV4_BIN, dir = d.path("m"), gguf = d.path("m.gguf");
  auto sh = [](const std::string& cmd) { return std::system(cmd.c_str()); };
  ASSERT_EQ(sh(bin + " init --preset tiny --seed 5 --out " + dir + " > /dev/null 2>&1"), 0);
  ASSERT_EQ(sh(bin + " convert -m " + dir + " --out " + gguf + " > " + d.path("convert.txt") + " 2>&1"), 0);
  EXPECT_NE(read_file(d.path("convert.txt")).find("checked on read-back"), std::string::npos);
  for (const char* m : {"m", "m.gguf"}) {
    const std::string base = d.path(std::string(m) + ".out");
    ASSERT_EQ(sh(bin + " run -m " + d.path(m) + " -p Hello -n 12 --temp 0 > " + base + " 2> " + base + ".err"), 0) << m;
  }
  const std::string a = read_file(d.path("m.out")) + read_file(d.path("m.out.err"));
  const std::string b = read_file(d.path("m.gguf.out")) + read_file(d.path("m.gguf.out.err"));
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(a, b);
  // --no-mmap (weights copied into huge-page memory): the same text.
  ASSERT_EQ(sh(bin + " run -m " + gguf + " --no-mmap -p Hello -n 12 --temp 0 > " + d.path("c.out") + " 2> " + d.path("c.out.err")), 0);
  EXPECT_EQ(read_file(d.path("c.out")) + read_file(d.path("c.out.err")), a);
  // A bad target type is one clean error line; so is a K-quant target for rows that are not a
  // multiple of its 256-value block.
  EXPECT_NE(sh(bin + " convert -m " + dir + " --out " + d.path("x.gguf") + " --type iq2_xxs > " + d.path("err.txt") + " 2>&1"), 0);
  EXPECT_NE(read_file(d.path("err.txt")).find("type iq2_xxs is not a convert target"), std::string::npos);
  EXPECT_NE(sh(bin + " convert -m " + dir + " --out " + d.path("x.gguf") + " --type q4_K > " + d.path("err.txt") + " 2>&1"), 0);
  EXPECT_NE(read_file(d.path("err.txt")).find("not a multiple of the q4_K block 256"), std::string::npos) << read_file(d.path("err.txt"));
}

}  // namespace
