// Session tests on the tiny-a golden checkpoint: stepwise == prefill, truncate + re-append is
// bit-identical to a fresh session at every cut point (through the rewind horizon, the
// checkpoint, and the recompute path), prefix reuse, and context limits.
#include <gtest/gtest.h>

#include <cstring>

#include "base/error.h"
#include "engine/session.h"
#include "model/forward.h"
#include "model/safetensors.h"
#include "model/weights.h"

using namespace dsv4;

namespace {

std::shared_ptr<const ModelWeights> tiny_a() {
  static auto w = load_model(std::string(DSV4_TEST_DATA_DIR) + "/tiny-a/checkpoint");
  return w;
}

// seq1 of the golden tokens: 131 tokens, crossing many CSA (4) and HCA (16) boundaries and
// wrapping the 32-token window several times.
std::vector<int64_t> seq1() {
  static auto t = TensorStore::open_file(std::string(DSV4_TEST_DATA_DIR) + "/tiny-a/tokens.safetensors").read_i64("seq1");
  return t;
}

std::vector<float> copy(std::span<const float> s) { return std::vector<float>(s.begin(), s.end()); }

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

int64_t argmax(std::span<const float> l) {
  int64_t best = 0;
  for (size_t i = 1; i < l.size(); ++i)
    if (l[i] > l[static_cast<size_t>(best)]) best = static_cast<int64_t>(i);
  return best;
}

// Logits of a fresh session's prefill of `tokens`.
std::vector<float> fresh(const std::vector<int64_t>& tokens, Numerics nm = Numerics::kReference) {
  SessionOptions o;
  o.numerics = nm;
  Session s(tiny_a(), o);
  return copy(s.append(tokens));
}

}  // namespace

TEST(Session, GreedyGenerationSameForPrefillAndStepwise) {
  const auto t = seq1();
  const std::vector<int64_t> prompt(t.begin(), t.begin() + 20);
  SessionOptions o;
  Session a(tiny_a(), o), b(tiny_a(), o);
  std::span<const float> la = a.append(prompt);
  std::span<const float> lb;
  for (int64_t tok : prompt) lb = b.step(tok);
  ASSERT_TRUE(bit_equal(copy(la), copy(lb)));
  std::vector<int64_t> ga, gb;
  for (int i = 0; i < 60; ++i) {  // 80 tokens: past two window wraps and several compressions
    ga.push_back(argmax(la));
    gb.push_back(argmax(lb));
    ASSERT_TRUE(bit_equal(copy(la), copy(lb))) << "step " << i;
    la = a.step(ga.back());
    lb = b.step(gb.back());
  }
  EXPECT_EQ(ga, gb);
}

TEST(Session, TruncateThenReappendIsBitIdenticalAtEveryCut) {
  const auto t = seq1();
  const int64_t N = static_cast<int64_t>(t.size());
  const auto w = tiny_a();
  const int64_t V = w->config.vocab_size;
  // Fresh-prefill logits of every prefix length at once: row k-1 of one all-position prefill
  // (the forward pass is batch-shape invariant; spot-checked against real fresh sessions below).
  std::vector<float> all(static_cast<size_t>(N * V));
  {
    SequenceState st(w->config, Numerics::kReference);
    ForwardOutput fo;
    fo.logits = all.data();
    fo.all_logits = true;
    forward(*w, st, t.data(), N, fo);
  }
  auto fresh_row = [&](int64_t k) { return std::vector<float>(all.begin() + (k - 1) * V, all.begin() + k * V); };
  for (int64_t k : {1, 17, 64, 131}) ASSERT_TRUE(bit_equal(fresh_row(k), fresh(std::vector<int64_t>(t.begin(), t.begin() + k))));

  SessionOptions o;
  o.rewind_horizon = N;  // every cut is served by the rings (no recomputation)
  Session s(w, o);
  s.append(t);
  // Cut at every length, from the end backwards; after each cut re-append a few tokens and
  // compare with a fresh prefill of the same prefix, then cut back again.
  for (int64_t m = N - 1; m >= 0; --m) {
    const int64_t k = std::min<int64_t>(N, m + 5);
    EXPECT_EQ(s.truncate(m), 0) << "cut " << m << " recomputed";
    EXPECT_TRUE(s.last_logits().empty());
    std::vector<int64_t> tail(t.begin() + m, t.begin() + k);
    auto got = copy(s.append(tail));
    ASSERT_TRUE(bit_equal(got, fresh_row(k))) << "cut at " << m << ", re-appended to " << k;
    // Token by token too (decode after a rewind).
    s.truncate(m);
    std::span<const float> l;
    for (int64_t p = m; p < k; ++p) l = s.step(t[static_cast<size_t>(p)]);
    ASSERT_TRUE(bit_equal(copy(l), fresh_row(k))) << "stepwise after cut at " << m;
  }
}

TEST(Session, TruncateBeyondHorizonRecomputes) {
  const auto t = seq1();
  SessionOptions o;
  o.rewind_horizon = 8;
  Session s(tiny_a(), o);
  s.append(t);
  EXPECT_EQ(s.truncate(125), 0);    // within the horizon
  EXPECT_EQ(s.truncate(50), 50);    // recomputed
  ASSERT_FALSE(s.last_logits().empty());
  EXPECT_TRUE(bit_equal(copy(s.last_logits()), fresh(std::vector<int64_t>(t.begin(), t.begin() + 50))));
  auto got = copy(s.append(std::vector<int64_t>(t.begin() + 50, t.begin() + 70)));
  EXPECT_TRUE(bit_equal(got, fresh(std::vector<int64_t>(t.begin(), t.begin() + 70))));
}

TEST(Session, CheckpointServesRewindsAfterLongGenerations) {
  const auto t = seq1();
  SessionOptions o;
  o.rewind_horizon = 4;
  Session s(tiny_a(), o);
  s.append(std::vector<int64_t>(t.begin(), t.begin() + 40));
  s.checkpoint();
  s.append(std::vector<int64_t>(t.begin() + 40, t.end()));  // far past the horizon
  EXPECT_EQ(s.truncate(38), 0);                              // served by the checkpoint
  auto got = copy(s.append(std::vector<int64_t>(t.begin() + 38, t.begin() + 45)));
  EXPECT_TRUE(bit_equal(got, fresh(std::vector<int64_t>(t.begin(), t.begin() + 45))));
  // A checkpoint whose tokens differ from the session's is not used.
  Session d(tiny_a(), o);
  d.append(std::vector<int64_t>(t.begin(), t.begin() + 40));
  d.checkpoint();
  d.truncate(38);
  std::vector<int64_t> other(t.begin() + 60, t.begin() + 100);  // different continuation
  d.append(other);
  EXPECT_EQ(d.truncate(39), 39);  // tokens 38.. differ from the checkpoint: recomputed
}

TEST(Session, PrefillReusesTheCommonPrefix) {
  const auto t = seq1();
  SessionOptions o;
  o.rewind_horizon = 64;
  Session s(tiny_a(), o);
  std::vector<int64_t> p1(t.begin(), t.begin() + 60);
  auto r1 = s.prefill(p1);
  EXPECT_EQ(r1.reused, 0);
  EXPECT_EQ(r1.computed, 60);
  // Same prompt again: everything but the last token is reused (its logits are recomputed).
  auto r2 = s.prefill(p1);
  EXPECT_EQ(r2.reused, 59);
  EXPECT_EQ(r2.computed, 1);
  EXPECT_TRUE(bit_equal(copy(r2.logits), fresh(p1)));
  // A prompt that diverges at 50 and goes on: 50 reused.
  std::vector<int64_t> p2(t.begin(), t.begin() + 50);
  p2.insert(p2.end(), t.begin() + 70, t.begin() + 100);
  auto r3 = s.prefill(p2);
  EXPECT_EQ(r3.reused, 50);
  EXPECT_EQ(r3.computed, 30);
  EXPECT_TRUE(bit_equal(copy(r3.logits), fresh(p2)));
}

TEST(Session, ContextAndTokenErrorsBeforeAnyWork) {
  SessionOptions o;
  o.context = 16;
  Session s(tiny_a(), o);
  std::vector<int64_t> long_prompt(17, 5);
  EXPECT_THROW(s.append(long_prompt), Error);
  EXPECT_EQ(s.size(), 0);
  EXPECT_THROW(s.prefill(long_prompt), Error);
  EXPECT_EQ(s.size(), 0);
  std::vector<int64_t> bad = {1, 2, 512};
  EXPECT_THROW(s.append(bad), Error);
  EXPECT_EQ(s.size(), 0);
  std::vector<int64_t> neg = {-1};
  EXPECT_THROW(s.append(neg), Error);
  s.append(std::vector<int64_t>(16, 3));
  EXPECT_THROW(s.step(4), Error);  // full
  SessionOptions big;
  big.context = 1 << 20;  // beyond max_position_embeddings
  EXPECT_THROW(Session(tiny_a(), big), Error);
}

TEST(Session, PreciseModeTruncateToo) {
  const auto t = seq1();
  SessionOptions o;
  o.numerics = Numerics::kPrecise;
  o.rewind_horizon = 40;
  Session s(tiny_a(), o);
  s.append(t);
  for (int64_t m : {95, 96, 97, 100, 111, 127}) {
    s.truncate(m);
    auto got = copy(s.append(std::vector<int64_t>(t.begin() + m, t.end())));
    EXPECT_TRUE(bit_equal(got, fresh(t, Numerics::kPrecise))) << "cut " << m;
  }
}

// Batched steps over several sessions (Session::step_batch / append_batch) leave every
// session exactly as stepping it alone does: the same tokens, bitwise the same logits, and a
// rewind horizon that still works afterwards; in both numerics modes, with the sessions at
// different positions and a prefill chunk mixed into the decode steps.
TEST(SessionBatch, StepBatchEqualsSteppingEachSessionAlone) {
  const auto t = seq1();
  for (Numerics nm : {Numerics::kReference, Numerics::kPrecise}) {
    SessionOptions o;
    o.numerics = nm;
    const int64_t prompt_len[3] = {5, 29, 62};  // different positions (window 32, ratios 4 / 16)
    std::vector<std::unique_ptr<Session>> alone, batched;
    for (int i = 0; i < 3; ++i) {
      const std::vector<int64_t> prompt(t.begin() + i, t.begin() + i + prompt_len[i]);
      alone.push_back(std::make_unique<Session>(tiny_a(), o));
      batched.push_back(std::make_unique<Session>(tiny_a(), o));
      alone.back()->prefill(prompt);
      batched.back()->prefill(prompt);
    }
    BatchWorkspace ws;
    for (int step = 0; step < 40; ++step) {
      std::vector<Session*> who;
      std::vector<int64_t> toks;
      for (int i = 0; i < 3; ++i) {
        if ((i + step) % 4 == 3) continue;  // sessions leave and rejoin between steps
        const int64_t tok = argmax(alone[i]->last_logits());
        alone[i]->step(tok);
        who.push_back(batched[i].get());
        toks.push_back(tok);
      }
      Session::step_batch(who, toks, ws);
      for (int i = 0; i < 3; ++i) {
        ASSERT_EQ(batched[i]->tokens(), alone[i]->tokens()) << "step " << step << " session " << i;
        ASSERT_TRUE(bit_equal(copy(batched[i]->last_logits()), copy(alone[i]->last_logits())))
            << "step " << step << " session " << i;
      }
    }
    // A prefill chunk of a new session mixed into one more decode step.
    Session fresh_alone(tiny_a(), o), fresh_batched(tiny_a(), o);
    const std::vector<int64_t> chunk(t.begin() + 50, t.begin() + 90);
    fresh_alone.append(chunk);
    const int64_t tok = argmax(alone[0]->last_logits());
    alone[0]->step(tok);
    const int64_t one[1] = {tok};
    const SessionAppend items[2] = {{&fresh_batched, chunk}, {batched[0].get(), std::span<const int64_t>(one, 1)}};
    Session::append_batch(items, ws);
    EXPECT_TRUE(bit_equal(copy(fresh_batched.last_logits()), copy(fresh_alone.last_logits())));
    EXPECT_TRUE(bit_equal(copy(batched[0]->last_logits()), copy(alone[0]->last_logits())));
    EXPECT_EQ(fresh_batched.tokens(), chunk);
    // The rewind horizon still serves truncates of batched sessions without recomputation.
    for (int i = 0; i < 3; ++i) {
      const int64_t cut = batched[i]->size() - 7;
      EXPECT_EQ(batched[i]->truncate(cut), 0);
      alone[i]->truncate(cut);
      const int64_t next = t[static_cast<size_t>(i)];
      EXPECT_TRUE(bit_equal(copy(batched[i]->step(next)), copy(alone[i]->step(next)))) << "session " << i;
    }
  }
}

TEST(SessionBatch, ErrorsBeforeAnyWork) {
  const auto t = seq1();
  SessionOptions o;
  o.context = 10;
  Session a(tiny_a(), o), b(tiny_a(), o);
  a.append(std::vector<int64_t>(t.begin(), t.begin() + 4));
  b.append(std::vector<int64_t>(t.begin(), t.begin() + 9));
  BatchWorkspace ws;
  const std::vector<int64_t> two = {3, 4};
  std::vector<Session*> who = {&a, &b};
  try {
    Session::step_batch(who, std::vector<int64_t>{3, 100000}, ws);
    ADD_FAILURE() << "bad token accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("batch item 1: token id 100000"), std::string::npos) << e.what();
  }
  const SessionAppend over[2] = {{&a, two}, {&b, two}};  // b: 9 + 2 > 10
  try {
    Session::append_batch(over, ws);
    ADD_FAILURE() << "context overflow accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("batch item 1: context overflow"), std::string::npos) << e.what();
  }
  const SessionAppend twice[2] = {{&a, two}, {&a, two}};
  EXPECT_THROW(Session::append_batch(twice, ws), Error);
  SessionOptions op = o;
  op.numerics = Numerics::kPrecise;
  Session p(tiny_a(), op);
  const SessionAppend mixed[2] = {{&a, two}, {&p, two}};
  EXPECT_THROW(Session::append_batch(mixed, ws), Error);
  EXPECT_THROW(Session::step_batch(who, std::vector<int64_t>{3}, ws), Error);
  EXPECT_EQ(a.size(), 4);
  EXPECT_EQ(b.size(), 9);
  EXPECT_EQ(p.size(), 0);
}

// reuse_prefix (the scheduler's chunked prefill) keeps what prefill() would reuse without
// recomputing, and the chunks appended afterwards give prefill()'s logits.
TEST(SessionBatch, ReusePrefixThenChunksEqualsPrefill) {
  const auto t = seq1();
  SessionOptions o;
  o.rewind_horizon = 8;
  Session a(tiny_a(), o), b(tiny_a(), o);
  const std::vector<int64_t> first(t.begin(), t.begin() + 60);
  a.prefill(first);
  b.prefill(first);
  std::vector<int64_t> second(t.begin(), t.begin() + 56);  // within the horizon: reused
  second.insert(second.end(), t.begin() + 100, t.begin() + 120);
  const Session::PrefillResult r = a.prefill(second);
  EXPECT_EQ(b.reuse_prefix(second), 56);
  EXPECT_EQ(r.reused, 56);
  BatchWorkspace ws;
  for (size_t done = 56; done < second.size(); done += 7) {
    const size_t m = std::min<size_t>(7, second.size() - done);
    const SessionAppend item{&b, std::span<const int64_t>(second.data() + done, m)};
    Session::append_batch(std::span<const SessionAppend>(&item, 1), ws);
  }
  EXPECT_TRUE(bit_equal(copy(b.last_logits()), copy(r.logits)));
  EXPECT_EQ(b.tokens(), second);
  // Too far back for the horizon (and no checkpoint): starts over.
  std::vector<int64_t> third(t.begin(), t.begin() + 10);
  third.push_back(7);
  EXPECT_EQ(b.reuse_prefix(third), 0);
  EXPECT_EQ(b.size(), 0);
}
