// Prefix cache: finished sessions (model state + the tokens it has seen) kept in RAM, so a new
// request whose prompt starts with an earlier request's tokens (multi-turn chat, agent loops,
// shared system prompts) skips recomputing them. Session::prefill does the reuse: it keeps the
// longest common prefix and rewinds (within the rewind horizon / checkpoint, else recomputes
// the kept part, which is still exact).
//
// Policy: acquire() takes the pooled session with the longest common prefix with the prompt out
// of the pool (a session serves one sequence at a time); with no useful match it creates a
// fresh session. release() puts a finished session back as most recently used and evicts least
// recently used sessions while the pool exceeds its memory budget.
//
// A request that reuses an entry takes it over: when two requests branch from one cached
// prefix, the entry ends up holding the later branch (the earlier one is recomputed if it comes
// back). Good for linear agent / chat histories; a radix tree of shared blocks would keep both.
//
// Not done: persistence to disk (the model state is not serialisable yet), and sharing one
// cached prefix between two concurrent requests (the second one gets a fresh session).
#pragma once
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <span>

#include "engine/session.h"

namespace dsv4::server {

class PrefixCache {
 public:
  PrefixCache(std::shared_ptr<const ModelWeights> model, SessionOptions options, size_t budget_bytes);

  struct Lease {
    std::unique_ptr<Session> session;
    int64_t common_prefix = 0;  // tokens shared with the prompt (what prefill can reuse at best)
  };
  Lease acquire(std::span<const int64_t> prompt);
  void release(std::unique_ptr<Session> session);

  int64_t entries() const;
  int64_t bytes() const;
  void clear();

 private:
  void evict_locked();
  std::shared_ptr<const ModelWeights> model_;
  SessionOptions options_;
  size_t budget_;
  mutable std::mutex mu_;
  struct Entry {
    std::unique_ptr<Session> session;
    size_t bytes = 0;
  };
  std::list<Entry> lru_;  // front = most recently used
  size_t total_ = 0;
};

}  // namespace dsv4::server
