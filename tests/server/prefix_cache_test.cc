// Prefix cache: picks the pooled session with the longest common prefix, Session::prefill then
// reuses it, and the pool stays within its memory budget by evicting least recently used
// sessions.
#include <gtest/gtest.h>

#include "../engine/tiny_model.h"
#include "frontends/server/prefix_cache.h"
#include "model/weights.h"

namespace dsv4::server {
namespace {

std::shared_ptr<const ModelWeights> tiny() {
  static std::shared_ptr<const ModelWeights> m = load_model(test::tiny_chat_model_dir());
  return m;
}

SessionOptions opts() {
  SessionOptions o;
  o.context = 128;
  return o;
}

TEST(PrefixCache, LongestCommonPrefixWins) {
  PrefixCache cache(tiny(), opts(), size_t(1) << 30);
  // Unrelated prompts: each gets a fresh session.
  for (std::vector<int64_t> p : {std::vector<int64_t>{10, 11, 12, 13}, std::vector<int64_t>{20, 11, 12}, std::vector<int64_t>{30, 31}}) {
    auto l = cache.acquire(p);
    EXPECT_EQ(l.common_prefix, 0);
    l.session->prefill(p);
    cache.release(std::move(l.session));
  }
  EXPECT_EQ(cache.entries(), 3);
  const std::vector<int64_t> prompt = {10, 11, 12, 50, 51};
  auto l = cache.acquire(prompt);
  EXPECT_EQ(l.common_prefix, 3);
  EXPECT_EQ(l.session->tokens(), (std::vector<int64_t>{10, 11, 12, 13}));
  EXPECT_EQ(cache.entries(), 2);  // taken out while in use
  Session::PrefillResult pre = l.session->prefill(prompt);
  EXPECT_EQ(pre.reused, 3);
  // Same logits as a fresh session (the reuse is exact).
  Session fresh(tiny(), opts());
  Session::PrefillResult ref = fresh.prefill(prompt);
  ASSERT_EQ(pre.logits.size(), ref.logits.size());
  for (size_t i = 0; i < ref.logits.size(); ++i) ASSERT_EQ(pre.logits[i], ref.logits[i]) << i;
  cache.release(std::move(l.session));
  // A request that shares a prefix takes the entry over (a branch replaces the cached one).
  auto b = cache.acquire(std::vector<int64_t>{20, 11, 99});
  EXPECT_EQ(b.common_prefix, 2);
  b.session->prefill(std::vector<int64_t>{20, 11, 99});
  cache.release(std::move(b.session));
  EXPECT_EQ(cache.acquire(std::vector<int64_t>{20, 11, 12}).common_prefix, 2);
  // No shared prefix: a fresh session, the pool is untouched.
  auto n = cache.acquire(std::vector<int64_t>{99});
  EXPECT_EQ(n.common_prefix, 0);
  EXPECT_EQ(n.session->size(), 0);
  EXPECT_EQ(cache.entries(), 2);
}

TEST(PrefixCache, EntryItCannotRewindToIsLeftAlone) {
  SessionOptions o = opts();
  o.rewind_horizon = 4;
  PrefixCache cache(tiny(), o, size_t(1) << 30);
  std::vector<int64_t> a(20);
  for (int64_t i = 0; i < 20; ++i) a[static_cast<size_t>(i)] = 100 + i;
  {
    auto l = cache.acquire(a);
    l.session->prefill(a);
    cache.release(std::move(l.session));
  }
  // Shares 3 tokens, 17 back from the entry's end: beyond the horizon (and no checkpoint), so
  // taking the entry would only reset it. A fresh session; the entry stays.
  const std::vector<int64_t> b = {100, 101, 102, 7, 8};
  auto lb = cache.acquire(b);
  EXPECT_EQ(lb.common_prefix, 0);
  EXPECT_EQ(lb.session->size(), 0);
  EXPECT_EQ(cache.entries(), 1);
  // Within the horizon: reused.
  std::vector<int64_t> c(a.begin(), a.begin() + 17);
  c.push_back(9);
  auto lc = cache.acquire(c);
  EXPECT_EQ(lc.common_prefix, 17);
  EXPECT_EQ(lc.session->reuse_prefix(c), 17);
  EXPECT_EQ(cache.entries(), 0);
}

TEST(PrefixCache, EvictsLeastRecentlyUsedWithinBudget) {
  Session probe(tiny(), opts());
  probe.prefill(std::vector<int64_t>{1, 2, 3});
  probe.checkpoint();
  const size_t one = probe.memory_bytes();
  ASSERT_GT(one, 0u);
  PrefixCache cache(tiny(), opts(), one * 2 + one / 2);  // room for two sessions
  for (int64_t k = 0; k < 4; ++k) {
    auto l = cache.acquire(std::vector<int64_t>{100 + k});
    l.session->prefill(std::vector<int64_t>{100 + k, 1, 2});
    l.session->checkpoint();
    cache.release(std::move(l.session));
  }
  EXPECT_EQ(cache.entries(), 2);
  EXPECT_LE(cache.bytes(), static_cast<int64_t>(one * 2 + one / 2));
  EXPECT_EQ(cache.acquire(std::vector<int64_t>{100, 1}).common_prefix, 0);  // oldest evicted
  EXPECT_EQ(cache.acquire(std::vector<int64_t>{103, 1, 5}).common_prefix, 2);  // newest kept
}

}  // namespace
}  // namespace dsv4::server
