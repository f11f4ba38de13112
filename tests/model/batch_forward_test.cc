// forward_batch: several sequences in one forward pass (continuous batching) give, for every
// sequence, BITWISE the logits of stepping that sequence alone, in both numerics modes, with
// the sequences at different positions (window wrap, CSA ratio-4, HCA ratio-16 and ratio-128
// compression boundaries crossed inside the batch), with sequences joining and leaving between
// steps, with prefill chunks mixed into decode steps, and with the per-sequence attention cores
// running in parallel on several threads.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "backend/thread_pool.h"
#include "base/error.h"
#include "model/init.h"
#include "runner.h"

namespace fs = std::filesystem;
using namespace dsv4;
using namespace dsv4::test;

namespace {

// A random model with a ratio-128 HCA layer (tiny-a has ratios 4 and 16 only): the tiny preset
// with a small vocabulary, layers [SWA, CSA 4, HCA 128, CSA 4] + MTP.
std::shared_ptr<const ModelWeights> ratio128_model() {
  static std::shared_ptr<const ModelWeights> w = [] {
    ModelConfig c = init_preset_config("tiny");
    c.vocab_size = 1024;
    c.compress_ratios = {0, 4, 128, 4, 0};
    const fs::path dir = fs::temp_directory_path() / ("dsv4_batch_r128_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    InitOptions opt;
    opt.seed = 7;
    write_random_model(c, dir.string(), opt);
    auto m = load_model(dir.string());
    return std::shared_ptr<const ModelWeights>(std::move(m));
  }();
  return w;
}

std::vector<int64_t> random_tokens(int64_t n, int64_t vocab, uint64_t seed) {
  std::vector<int64_t> t(static_cast<size_t>(n));
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& v : t) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    v = static_cast<int64_t>(x % static_cast<uint64_t>(vocab));
  }
  return t;
}

bool same_bits(const float* a, const float* b, int64_t n) { return std::memcmp(a, b, static_cast<size_t>(n) * 4) == 0; }

int64_t first_difference(const float* a, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (std::memcmp(a + i, b + i, 4) != 0) return i;
  return -1;
}

struct Seq {
  std::vector<int64_t> tokens;
  int64_t prefill = 0;  // tokens of the first call
};

// Logits after each call when the sequence runs alone: prefill, then one token per call.
std::vector<std::vector<float>> alone(const ModelWeights& w, Numerics nm, const Seq& s) {
  const int64_t V = w.config.vocab_size;
  SequenceState st(w.config, nm);
  std::vector<std::vector<float>> out;
  std::vector<float> l(static_cast<size_t>(V));
  ForwardOutput fo;
  fo.logits = l.data();
  forward(w, st, s.tokens.data(), s.prefill, fo);
  out.push_back(l);
  for (int64_t p = s.prefill; p < static_cast<int64_t>(s.tokens.size()); ++p) {
    forward(w, st, s.tokens.data() + p, 1, fo);
    out.push_back(l);
  }
  return out;
}

// Runs all sequences batched: the first calls (prefill chunks of different lengths) in one
// batch, then decode steps where sequence i takes part in step j unless (i + j) % skip == 0
// (sequences join and leave between steps); every call's logits must equal the lone run's.
void expect_batched_equals_alone(const ModelWeights& w, Numerics nm, const std::vector<Seq>& seqs, int skip) {
  const int64_t V = w.config.vocab_size;
  const size_t k = seqs.size();
  std::vector<std::vector<std::vector<float>>> want;
  for (const Seq& s : seqs) want.push_back(alone(w, nm, s));
  std::vector<SequenceState> states;
  for (size_t i = 0; i < k; ++i) states.emplace_back(w.config, nm);
  std::vector<std::vector<float>> logits(k, std::vector<float>(static_cast<size_t>(V)));
  std::vector<size_t> calls(k, 0);  // calls done per sequence
  Workspace ws;
  std::vector<ForwardItem> items;
  for (size_t i = 0; i < k; ++i) {
    ForwardItem it;
    it.state = &states[i];
    it.tokens = seqs[i].tokens.data();
    it.n = seqs[i].prefill;
    it.out.logits = logits[i].data();
    items.push_back(it);
  }
  auto check = [&](const std::vector<size_t>& who, const char* what) {
    for (size_t i : who) {
      const std::vector<float>& ref = want[i][calls[i]];
      ASSERT_TRUE(same_bits(logits[i].data(), ref.data(), V))
          << what << ": sequence " << i << " call " << calls[i] << " (position " << states[i].pos - 1
          << "): first differing logit " << first_difference(logits[i].data(), ref.data(), V) << " of " << V;
      ++calls[i];
    }
  };
  forward_batch(w, items, ws);
  std::vector<size_t> all(k);
  for (size_t i = 0; i < k; ++i) all[i] = i;
  check(all, "batched prefill");
  for (int step = 0;; ++step) {
    items.clear();
    std::vector<size_t> who;
    bool left = false;
    for (size_t i = 0; i < k; ++i) {
      const int64_t pos = states[i].pos;
      if (pos >= static_cast<int64_t>(seqs[i].tokens.size())) continue;
      left = true;
      if (skip > 0 && (static_cast<int>(i) + step) % skip == 0) continue;
      ForwardItem it;
      it.state = &states[i];
      it.tokens = seqs[i].tokens.data() + pos;
      it.n = 1;
      it.out.logits = logits[i].data();
      items.push_back(it);
      who.push_back(i);
    }
    if (!left) break;
    if (items.empty()) continue;
    forward_batch(w, items, ws);
    check(who, "batched decode");
  }
  for (size_t i = 0; i < k; ++i) EXPECT_EQ(calls[i], want[i].size()) << "sequence " << i;
}

class BatchForward : public testing::TestWithParam<Numerics> {};

// tiny-a (window 32; CSA ratio 4 with the indexer, HCA ratio 16): four sequences at positions
// from 1 to ~150, each decoding across window wraps and ratio-4 / ratio-16 boundaries.
TEST_P(BatchForward, TinyADecodeStepsEqualSteppingAlone) {
  auto w = tiny_model();
  const int64_t V = w->config.vocab_size;
  std::vector<Seq> seqs = {
      {random_tokens(24, V, 1), 1},     // starts at position 0 alone in its first call
      {random_tokens(60, V, 2), 30},    // crosses the window (32) and ratio-16 boundary 47/48
      {random_tokens(90, V, 3), 61},    // crosses 63/64 (ratio 4 and 16) and the window again
      {random_tokens(150, V, 4), 126},  // crosses 127/128 and 143/144
  };
  expect_batched_equals_alone(*w, GetParam(), seqs, 0);
}

TEST_P(BatchForward, TinyASequencesJoinAndLeave) {
  auto w = tiny_model();
  const int64_t V = w->config.vocab_size;
  std::vector<Seq> seqs = {
      {random_tokens(30, V, 11), 3}, {random_tokens(45, V, 12), 17}, {random_tokens(70, V, 13), 40}};
  expect_batched_equals_alone(*w, GetParam(), seqs, 3);
}

// Ratio-128 HCA layer: sequences decode across positions 127/128 and 255/256.
TEST_P(BatchForward, Ratio128DecodeStepsEqualSteppingAlone) {
  auto w = ratio128_model();
  const int64_t V = w->config.vocab_size;
  std::vector<Seq> seqs = {
      {random_tokens(135, V, 21), 122},
      {random_tokens(262, V, 22), 250},
      {random_tokens(20, V, 23), 5},
  };
  expect_batched_equals_alone(*w, GetParam(), seqs, 0);
}

// A prefill chunk mixed into a decode step: the chunk's sequence gets the logits of every
// position (all_logits) as a lone chunked prefill does; the decoding sequences theirs.
TEST_P(BatchForward, PrefillChunkMixedWithDecodeSteps) {
  const Numerics nm = GetParam();
  auto w = tiny_model();
  const ModelConfig& c = w->config;
  const int64_t V = c.vocab_size;
  auto a = random_tokens(80, V, 31), b = random_tokens(80, V, 32);
  // Alone: a prefills 50 and steps; b prefills chunks of 20 with all logits.
  SequenceState sa(c, nm), sb(c, nm), ta(c, nm), tb(c, nm);
  std::vector<float> la(static_cast<size_t>(V)), lb(static_cast<size_t>(20 * V));
  std::vector<float> ra(static_cast<size_t>(V)), rb(static_cast<size_t>(20 * V));
  ForwardOutput oa, ob;
  oa.logits = la.data();
  ob.logits = lb.data();
  ob.all_logits = true;
  forward(*w, sa, a.data(), 50, oa);
  forward(*w, ta, a.data(), 50, ForwardOutput{ra.data(), false, nullptr, nullptr});
  Workspace ws;
  for (int64_t j = 0; j < 4; ++j) {
    // Alone.
    forward(*w, sa, a.data() + 50 + j, 1, oa);
    forward(*w, sb, b.data() + 20 * j, 20, ob);
    // Batched: b's chunk first, then a's decode token.
    ForwardItem items[2];
    items[0].state = &tb;
    items[0].tokens = b.data() + 20 * j;
    items[0].n = 20;
    items[0].out.logits = rb.data();
    items[0].out.all_logits = true;
    items[1].state = &ta;
    items[1].tokens = a.data() + 50 + j;
    items[1].n = 1;
    items[1].out.logits = ra.data();
    forward_batch(*w, items, ws);
    ASSERT_TRUE(same_bits(ra.data(), la.data(), V)) << "decode step " << j << ": first differing logit "
                                                    << first_difference(ra.data(), la.data(), V);
    ASSERT_TRUE(same_bits(rb.data(), lb.data(), 20 * V)) << "prefill chunk " << j << ": first differing logit "
                                                         << first_difference(rb.data(), lb.data(), 20 * V);
  }
  EXPECT_EQ(ta.pos, 54);
  EXPECT_EQ(tb.pos, 80);
}

// The attention cores of a batch's sequences run in parallel on the thread pool (one scratch
// per worker): force a pool of 3 threads, whatever this machine has, so that path runs here.
TEST_P(BatchForward, ParallelAttentionCoresGiveTheSameBits) {
  set_default_thread_count(3);
  auto w = tiny_model();
  const int64_t V = w->config.vocab_size;
  std::vector<Seq> seqs = {{random_tokens(40, V, 41), 2},   {random_tokens(70, V, 42), 45},
                           {random_tokens(50, V, 43), 20},  {random_tokens(30, V, 44), 9},
                           {random_tokens(140, V, 45), 125}};
  expect_batched_equals_alone(*w, GetParam(), seqs, 4);
  set_default_thread_count(0);
}

INSTANTIATE_TEST_SUITE_P(Modes, BatchForward, testing::Values(Numerics::kReference, Numerics::kPrecise),
                         [](const auto& info) { return info.param == Numerics::kReference ? "Reference" : "Precise"; });

TEST(BatchForwardChecks, RejectsBadBatchesBeforeChangingAnyState) {
  auto w = tiny_model();
  const ModelConfig& c = w->config;
  SequenceState s0(c, Numerics::kReference), s1(c, Numerics::kReference), sp(c, Numerics::kPrecise);
  std::vector<int64_t> ok = {5, 6, 7}, bad = {5, c.vocab_size};
  Workspace ws;
  auto item = [](SequenceState& s, const std::vector<int64_t>& t) {
    ForwardItem it;
    it.state = &s;
    it.tokens = t.data();
    it.n = static_cast<int64_t>(t.size());
    return it;
  };
  auto expect_error = [&](std::vector<ForwardItem> items, const std::string& needle) {
    try {
      forward_batch(*w, items, ws);
      ADD_FAILURE() << "no error; wanted one mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error({item(s0, ok), item(s1, bad)}, "sequence 1: token id 512");
  expect_error({item(s0, ok), item(s0, ok)}, "repeats the state of sequence 0");
  expect_error({item(s0, ok), item(sp, ok)}, "different numerics modes");
  expect_error({}, "no sequences");
  EXPECT_EQ(s0.pos, 0);
  EXPECT_EQ(s1.pos, 0);
  EXPECT_EQ(sp.pos, 0);
}

}  // namespace
