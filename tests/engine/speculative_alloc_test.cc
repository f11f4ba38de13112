// The speculative decode loop allocates no heap memory per step once its buffers have grown
// (drafts, draft distributions, verify logits / streams, the MTP ring, the sampler): count
// operator new calls over many speculative steps (greedy and sampled, draft lengths 1 and 4).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "engine/speculative.h"
#include "model/safetensors.h"
#include "model/weights.h"

std::atomic<int64_t> g_allocs{0};

void* operator new(size_t n) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

using namespace dsv4;

TEST(SpecLoop, NoHeapAllocationPerStep) {
  auto w = load_model(std::string(DSV4_TEST_DATA_DIR) + "/tiny-a/checkpoint");
  auto t = TensorStore::open_file(std::string(DSV4_TEST_DATA_DIR) + "/tiny-a/tokens.safetensors").read_i64("seq1");
  for (float temp : {0.0f, 1.5f})
    for (int draft : {1, 4}) {
      SessionOptions o;
      o.mtp = true;
      Session s(w, o);
      SamplingParams sp;
      sp.temperature = temp;
      sp.seed = 5;
      Sampler sampler(s.vocab_size(), sp);
      TokenHistory hist(s.vocab_size());
      SpeculativeDecoder dec(s, sampler, &hist, draft);
      int64_t committed = 0;
      SpecHooks hooks;
      hooks.commit = [&](const SampleResult& r) {
        hist.add_output(r.token);
        ++committed;
        return true;
      };
      s.append(std::span<const int64_t>(t.data(), 20));
      int32_t pending = static_cast<int32_t>(t[20]);
      // Warm-up: every buffer reaches its size (verify of draft + 1 tokens, token list growth).
      for (int i = 0; i < 8; ++i) pending = dec.step(pending, 1000, hooks).pending;
      const int64_t before = g_allocs.load();
      const int64_t steps = 60;
      for (int i = 0; i < steps; ++i) pending = dec.step(pending, 1000, hooks).pending;
      const int64_t allocs = g_allocs.load() - before;
      // Buffers that scale with the context (compressed entries, index lists, the token list)
      // grow geometrically: a handful in total, never one per step.
      EXPECT_LE(allocs, 12) << "allocations over " << steps << " speculative steps (temperature " << temp << ", draft " << draft
                            << ", " << committed << " tokens)";
    }
}
