// One code path for prefill, decode and chunked prefill: all must give the logits of a full
// prefill (bit-identical: every op is per token and batch-shape independent); plus unit tests
// of the state machine parts with hand-checkable values.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "base/error.h"
#include "model/attention.h"
#include "model/compressor.h"
#include "model/moe.h"
#include "ops/formats.h"
#include "runner.h"

using namespace dsv4;
using namespace dsv4::test;

namespace {

// Logits of every position when the sequence is fed in chunks of the given sizes (cycled).
std::vector<float> chunked_logits(Numerics nm, const std::vector<int64_t>& tokens, std::vector<int64_t> chunks,
                                  SequenceState* reuse = nullptr) {
  auto w = tiny_model();
  const ModelConfig& c = w->config;
  const int64_t N = static_cast<int64_t>(tokens.size()), V = c.vocab_size;
  SequenceState fresh(c, nm);
  SequenceState& st = reuse ? *reuse : fresh;
  std::vector<float> logits(static_cast<size_t>(N * V));
  int64_t p = 0;
  for (size_t i = 0; p < N; ++i) {
    int64_t n = std::min(chunks[i % chunks.size()], N - p);
    ForwardOutput fo;
    fo.logits = logits.data() + p * V;
    fo.all_logits = true;
    forward(*w, st, tokens.data() + p, n, fo);
    p += n;
  }
  EXPECT_EQ(st.pos, N);
  return logits;
}

void expect_identical(const std::vector<float>& a, const std::vector<float>& b, const char* what) {
  ASSERT_EQ(a.size(), b.size());
  Diff d = diff(a, b);
  EXPECT_EQ(d.max_abs, 0.0) << what;
}

class Modes : public testing::TestWithParam<Numerics> {};

TEST_P(Modes, DecodeAndChunkedPrefillEqualFullPrefill) {
  const Numerics nm = GetParam();
  auto tokens = seq_tokens("seq1");  // 131 tokens: wraps the window (32), 32 CSA + 8 HCA entries
  auto full = prefill_logits(nm, tokens);
  expect_identical(chunked_logits(nm, tokens, {1}), full, "one token at a time");
  // Prefill 40 (> window, not a multiple of 16), then decode.
  expect_identical(chunked_logits(nm, tokens, {40, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                               1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                               1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                               1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}),
                   full, "prefill 40 then decode");
  // Chunked prefill with chunks straddling compressor windows and the window ring.
  expect_identical(chunked_logits(nm, tokens, {7, 3, 33, 5, 50}), full, "chunks 7,3,33,5,50");
  expect_identical(chunked_logits(nm, tokens, {64}), full, "chunks of 64");
}

TEST_P(Modes, ResetGivesAFreshSequence) {
  const Numerics nm = GetParam();
  auto tokens = seq_tokens("seq0");
  auto full = prefill_logits(nm, tokens);
  SequenceState st(tiny_model()->config, nm);
  auto other = seq_tokens("seq1");
  other.resize(50);
  chunked_logits(nm, other, {50}, &st);
  st.reset();
  // A 3-token prompt: the overlapping compressor's "previous window" must not leak stale state.
  std::vector<int64_t> three(tokens.begin(), tokens.begin() + 3);
  auto a = chunked_logits(nm, three, {3}, &st);
  auto b = prefill_logits(nm, three);
  expect_identical(a, b, "3 tokens after reset");
  st.reset();
  expect_identical(chunked_logits(nm, tokens, {tokens.size() > 0 ? (int64_t)tokens.size() : 1}, &st), full,
                   "seq0 after reset");
}

INSTANTIATE_TEST_SUITE_P(Numerics, Modes, testing::Values(Numerics::kPrecise, Numerics::kReference),
                         [](const testing::TestParamInfo<Numerics>& i) {
                           return std::string(i.param == Numerics::kPrecise ? "Precise" : "Reference");
                         });

TEST(CompressorState, EmitsAtWindowEndsDuringDecode) {
  auto w = tiny_model();
  const ModelConfig& c = w->config;
  SequenceState st(c, Numerics::kPrecise);
  auto tokens = seq_tokens("seq1");
  for (int64_t p = 0; p < 40; ++p) {
    ForwardOutput fo;
    forward(*w, st, tokens.data() + p, 1, fo);
    for (int64_t l = 0; l < c.n_layers; ++l) {
      const LayerState& ls = st.layers[l];
      if (!ls.has_compressor) continue;
      // Entry i completes at position r*i + r - 1.
      EXPECT_EQ(ls.compressor.n_entries, (p + 1) / ls.compressor.ratio) << "layer " << l << " pos " << p;
      if (ls.has_indexer) EXPECT_EQ(ls.indexer.n_entries, (p + 1) / ls.indexer.ratio);
    }
  }
}

// Hand-checkable pooling: overlapping ratio-4 compressor with d = 1 (2 channels stored).
TEST(CompressorState, OverlappingPoolByHand) {
  CompressorState cs;
  cs.init(4, 1, true, 0, KvFormat::kF32, 0, 64);
  ASSERT_EQ(cs.ring_cap, 8);
  // Position p: A = (10p, 100p) (previous-half channel, current-half channel), Z = (0, 0).
  for (int64_t p = 0; p < 8; ++p) {
    cs.a[p * 2 + 0] = 10.0f * p;
    cs.a[p * 2 + 1] = 100.0f * p;
    cs.z[p * 2 + 0] = 0.0f;
    cs.z[p * 2 + 1] = 0.0f;
  }
  float out = 0;
  // Entry 0 (p = 3): no previous window; uniform softmax over positions 0..3, current half.
  compressor_pool(cs, 3, &out);
  EXPECT_FLOAT_EQ(out, (0 + 100 + 200 + 300) / 4.0f);
  // Entry 1 (p = 7): positions 0..3 (previous half) and 4..7 (current half), uniform.
  compressor_pool(cs, 7, &out);
  EXPECT_FLOAT_EQ(out, (0 + 10 + 20 + 30 + 400 + 500 + 600 + 700) / 8.0f);
  // A dominant score selects its slot.
  cs.z[5 * 2 + 1] = 100.0f;
  compressor_pool(cs, 7, &out);
  EXPECT_FLOAT_EQ(out, 500.0f);
}

TEST(CompressorState, HeavyPoolByHand) {
  CompressorState cs;
  cs.init(16, 1, false, 0, KvFormat::kF32, 0, 64);
  for (int64_t p = 16; p < 32; ++p) {
    cs.a[p % 16] = static_cast<float>(p);
    cs.z[p % 16] = p == 20 ? std::log(3.0f) : 0.0f;  // weight 3 for position 20, 1 for the 15 others
  }
  float out = 0;
  compressor_pool(cs, 31, &out);
  double num = 0;
  for (int p = 16; p < 32; ++p) num += (p == 20 ? 3.0 : 1.0) * p;
  EXPECT_NEAR(out, num / 18.0, 1e-4);
}

TEST(WindowRing, HoldsTheLastWindowAfterWrapAround) {
  auto w = tiny_model();
  const ModelConfig& c = w->config;
  auto tokens = seq_tokens("seq1");
  const int64_t N = c.window * 2 + 5;  // wraps twice
  tokens.resize(N);
  // KV of every position from a prefill trace...
  std::vector<BlockTrace> traces(c.n_layers);
  std::vector<std::vector<float>> kv(c.n_layers, std::vector<float>(N * c.head_dim));
  for (int64_t l = 0; l < c.n_layers; ++l) traces[l].attn.kv = kv[l].data();
  SequenceState st(c, Numerics::kReference);
  ForwardOutput fo;
  fo.traces = &traces;
  forward(*w, st, tokens.data(), N, fo);
  // ... and the ring holds positions N-W..N-1 in slots p % W.
  std::vector<float> row(c.head_dim);
  for (int64_t l = 0; l < c.n_layers; ++l)
    for (int64_t p = N - c.window; p < N; ++p) {
      st.layers[l].read_window(p, row.data());
      for (int64_t e = 0; e < c.head_dim; ++e)
        ASSERT_EQ(row[e], kv[l][p * c.head_dim + e]) << "layer " << l << " pos " << p;
    }
  EXPECT_EQ(st.layers[0].window_row(N - 1),
            st.layers[0].window.data() + ((N - 1) % c.window) * st.layers[0].window_row_bytes);
}

// Synthetic router: all-zero gate weights make every score sqrt(softplus(0)), i.e. ties.
TEST(MoeRouting, HashRoutingAndTiesByHand) {
  ModelConfig c = tiny_model()->config;
  const int64_t E = c.n_routed_experts, k = c.n_activated_experts, D = c.dim, V = 4;
  std::vector<uint16_t> gate_w(E * D, 0);
  std::vector<int64_t> tid2eid(V * k);
  for (int64_t t = 0; t < V; ++t)
    for (int64_t j = 0; j < k; ++j) tid2eid[t * k + j] = (E - 1 - t - 2 * j + 4 * E) % E;  // distinct per row
  std::vector<float> bias(E, 0.0f);
  Tensor tg{"gate", DType::BF16, {E, D}, reinterpret_cast<const uint8_t*>(gate_w.data()), gate_w.size() * 2, ""};
  Tensor tt{"tid2eid", DType::I64, {V, k}, reinterpret_cast<const uint8_t*>(tid2eid.data()), tid2eid.size() * 8, ""};
  Tensor tb{"bias", DType::F32, {E}, reinterpret_cast<const uint8_t*>(bias.data()), bias.size() * 4, ""};
  MoeWeights mw;
  mw.gate.weight = &tg;
  mw.gate.format = WeightFormat::kBf16;
  mw.gate.out = E;
  mw.gate.in = D;
  mw.tid2eid = &tt;
  mw.bias = &tb;
  std::vector<float> x(2 * D, 0.5f), scores(2 * E), weights(2 * k);
  std::vector<int64_t> tokens = {3, 1}, idx(2 * k);
  const float s0 = std::sqrt(std::log1p(1.0f));  // sqrt(softplus(0))
  // Hash routing: the table row, in its order; weights = equal scores renormalised * scale.
  moe_route(c, mw, true, x.data(), tokens.data(), 2, scores.data(), idx.data(), weights.data());
  for (int64_t t = 0; t < 2; ++t)
    for (int64_t j = 0; j < k; ++j) {
      EXPECT_EQ(idx[t * k + j], tid2eid[tokens[t] * k + j]);
      EXPECT_NEAR(weights[t * k + j], c.route_scale / k, 1e-6);
    }
  for (float s : scores) EXPECT_NEAR(s, s0, 1e-6);
  // Learned routing with all scores tied: the lowest expert ids win, in ascending order.
  moe_route(c, mw, false, x.data(), tokens.data(), 2, scores.data(), idx.data(), weights.data());
  for (int64_t j = 0; j < k; ++j) EXPECT_EQ(idx[j], j);
  // The bias only selects: a bias on the last expert moves it into the selection, the weight
  // still comes from the (tied) unbiased score.
  bias[E - 1] = 1.0f;
  moe_route(c, mw, false, x.data(), tokens.data(), 2, scores.data(), idx.data(), weights.data());
  EXPECT_EQ(idx[0], E - 1);
  EXPECT_EQ(idx[1], 0);
  EXPECT_NEAR(weights[0], c.route_scale / k, 1e-6);
}

TEST(SparseAttention, SinkAndMaskByHand) {
  // One head, hd = 2: q = (1, 0); rows k0 = (0, 1) (score 0), masked, k2 = (2, 0) (score 2*scale).
  const float q[2] = {1.0f, 0.0f};
  const float k0[2] = {0.0f, 1.0f}, k2[2] = {2.0f, 0.0f};
  const KvRow rows[3] = {{k0, nullptr}, {}, {k2, nullptr}};
  const float sink = 0.5f, scale = 0.5f;
  float o[2];
  Workspace ws;
  sparse_attention_row(q, 1, 2, rows, 3, KvDecoder{}, &sink, scale, Numerics::kPrecise, ws, o);
  const double e0 = std::exp(0.0 - 1.0), e2 = std::exp(1.0 - 1.0), es = std::exp(0.5 - 1.0);
  const double den = e0 + e2 + es;
  EXPECT_NEAR(o[0], (e2 * 2.0) / den, 1e-6);
  EXPECT_NEAR(o[1], (e0 * 1.0) / den, 1e-6);
  // Blocks of 64: the same rows spread over two blocks give the same result (precise mode).
  std::vector<KvRow> many(130);
  many[3].f = k0;
  many[100].f = k2;
  float o2[2];
  sparse_attention_row(q, 1, 2, many.data(), 130, KvDecoder{}, &sink, scale, Numerics::kPrecise, ws, o2);
  EXPECT_NEAR(o2[0], o[0], 1e-6);
  EXPECT_NEAR(o2[1], o[1], 1e-6);
}

TEST(QHeadNorm, ReferenceIsBf16) {
  float q[4] = {3.0f, 4.0f, 0.0f, 0.0f};  // mean square 6.25 -> rsqrt 0.4
  q_head_norm(q, 1, 4, 1e-6, Numerics::kReference);
  EXPECT_EQ(q[0], round_bf16(3.0f * round_bf16(0.4f)));
  EXPECT_EQ(q[1], round_bf16(4.0f * round_bf16(0.4f)));
  float p[4] = {3.0f, 4.0f, 0.0f, 0.0f};
  q_head_norm(p, 1, 4, 1e-6, Numerics::kPrecise);
  EXPECT_NEAR(p[0], 1.2f, 1e-6);
  EXPECT_NEAR(p[1], 1.6f, 1e-6);
}

}  // namespace

namespace {

// Rewind: feed a wrong continuation, truncate, feed the right one: the logits equal a fresh
// prefill (both modes, bit-identical).
void check_truncate(Numerics nm) {
  auto w = tiny_model();
  const ModelConfig& c = w->config;
  auto tokens = seq_tokens("seq1");
  const int64_t N = static_cast<int64_t>(tokens.size()), V = c.vocab_size, m = 85, H = 20;
  auto full = prefill_logits(nm, tokens);
  SequenceState st(c, nm, H);
  ForwardOutput fo;
  forward(*w, st, tokens.data(), m, fo);
  std::vector<int64_t> wrong(H);
  for (int64_t i = 0; i < H; ++i) wrong[i] = (tokens[m + i] * 7 + 3) % V;
  forward(*w, st, wrong.data(), 3, fo);  // a chunk...
  for (int64_t i = 3; i < H; ++i) forward(*w, st, wrong.data() + i, 1, fo);  // ...and decode steps
  EXPECT_THROW(st.truncate(m - 1), Error);  // beyond the horizon
  st.truncate(m);
  EXPECT_EQ(st.pos, m);
  std::vector<float> logits((N - m) * V);
  fo.logits = logits.data();
  fo.all_logits = true;
  forward(*w, st, tokens.data() + m, 10, fo);
  for (int64_t p = m + 10; p < N; ++p) {
    fo.logits = logits.data() + (p - m) * V;
    fo.all_logits = false;
    forward(*w, st, tokens.data() + p, 1, fo);
  }
  std::vector<float> ref(full.begin() + m * V, full.end());
  EXPECT_EQ(diff(logits, ref).max_abs, 0.0);
}

}  // namespace

TEST(Truncate, RewindThenContinueEqualsPrefillPrecise) { check_truncate(Numerics::kPrecise); }
TEST(Truncate, RewindThenContinueEqualsPrefillReference) { check_truncate(Numerics::kReference); }

TEST(Mtp, ChunkedEqualsOneCall) {
  auto w = tiny_model();
  const ModelConfig& c = w->config;
  auto tokens = seq_tokens("seq1");
  tokens.resize(70);
  const int64_t N = 70, V = c.vocab_size, hc = c.hc_mult, D = c.dim;
  auto one = mtp_logits(Numerics::kReference, tokens);
  // Main model one token at a time, the MTP block fed as soon as the next token is known.
  SequenceState st(c, Numerics::kReference);
  std::vector<float> streams(N * hc * D), logits((N - 1) * V);
  for (int64_t p = 0; p < N; ++p) {
    ForwardOutput fo;
    fo.final_streams = streams.data() + p * hc * D;
    forward(*w, st, tokens.data() + p, 1, fo);
    if (p >= 1)
      mtp_forward(*w, st, streams.data() + (p - 1) * hc * D, tokens.data() + p, 1, logits.data() + (p - 1) * V, false,
                  nullptr, nullptr);
  }
  EXPECT_EQ(st.mtp_pos, N - 1);
  EXPECT_EQ(diff(logits, one).max_abs, 0.0);
}
