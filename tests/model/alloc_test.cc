// The decode loop allocates no heap memory once its buffers have grown (workspace, rings and
// ops scratch are reused): count operator new calls around one-token forward calls, and around
// batched decode steps of several sequences (forward_batch with a caller-owned workspace).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "runner.h"

std::atomic<int64_t> g_allocs{0};
volatile bool g_measuring = false;

void* operator new(size_t n) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

using namespace dsv4;
using namespace dsv4::test;

TEST(DecodeLoop, NoHeapAllocationPerToken) {
  auto w = tiny_model();
  const ModelConfig& c = w->config;
  auto tokens = seq_tokens("seq2");
  for (Numerics nm : {Numerics::kReference, Numerics::kPrecise}) {
    SequenceState st(c, nm);
    std::vector<float> logits(c.vocab_size), streams(c.hc_mult * c.dim);
    ForwardOutput fo;
    fo.logits = logits.data();
    forward(*w, st, tokens.data(), 20, fo);
    fo.final_streams = streams.data();  // one row per decode step
    // Warm-up steps let every buffer reach its decode size.
    int64_t p = 20;
    for (; p < 24; ++p) forward(*w, st, tokens.data() + p, 1, fo);
    // Steps up to position 200: buffers that scale with the context (compressed entries,
    // indexer scores, index lists) grow geometrically, so a handful of allocations in total
    // is expected, never one per step.
    const int64_t before = g_allocs.load();
    g_measuring = true;
    for (; p < 200; ++p) forward(*w, st, tokens.data() + p, 1, fo);
    g_measuring = false;
    const int64_t allocs = g_allocs.load() - before;
    EXPECT_LE(allocs, 10) << "allocations over " << (200 - 24) << " decode steps";
  }
}

TEST(DecodeLoop, NoHeapAllocationPerBatchedStep) {
  auto w = tiny_model();
  const ModelConfig& c = w->config;
  auto tokens = seq_tokens("seq2");
  for (Numerics nm : {Numerics::kReference, Numerics::kPrecise}) {
    // Three sequences at different positions, each with its own logits buffer.
    const int64_t starts[3] = {20, 45, 70};
    std::vector<SequenceState> st;
    for (int i = 0; i < 3; ++i) st.emplace_back(c, nm);
    std::vector<std::vector<float>> logits(3, std::vector<float>(c.vocab_size));
    Workspace ws;
    ForwardItem items[3];
    for (int i = 0; i < 3; ++i) {
      items[i].state = &st[i];
      items[i].tokens = tokens.data();
      items[i].n = starts[i];
      items[i].out.logits = logits[i].data();
    }
    forward_batch(*w, items, ws);
    auto step = [&] {
      for (int i = 0; i < 3; ++i) {
        items[i].tokens = tokens.data() + st[i].pos;
        items[i].n = 1;
      }
      forward_batch(*w, items, ws);
    };
    for (int s = 0; s < 4; ++s) step();
    const int64_t before = g_allocs.load();
    g_measuring = true;
    for (int s = 0; s < 150; ++s) step();
    g_measuring = false;
    const int64_t allocs = g_allocs.load() - before;
    EXPECT_LE(allocs, 20) << "allocations over 150 batched decode steps of 3 sequences";
  }
}
