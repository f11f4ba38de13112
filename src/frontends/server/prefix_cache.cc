#include "frontends/server/prefix_cache.h"

#include <algorithm>

namespace dsv4::server {

PrefixCache::PrefixCache(std::shared_ptr<const ModelWeights> model, SessionOptions options, size_t budget_bytes)
    : model_(std::move(model)), options_(options), budget_(budget_bytes) {}

PrefixCache::Lease PrefixCache::acquire(std::span<const int64_t> prompt) {
  std::unique_lock lock(mu_);
  auto best = lru_.end();
  int64_t best_len = 0;
  for (auto it = lru_.begin(); it != lru_.end(); ++it) {
    const auto& toks = it->session->tokens();
    const size_t n = std::min(toks.size(), prompt.size());
    const auto mm = std::mismatch(toks.begin(), toks.begin() + static_cast<ptrdiff_t>(n), prompt.begin());
    const int64_t len = mm.first - toks.begin();
    if (len > best_len) {
      best_len = len;
      best = it;
    }
  }
  Lease lease;
  if (best != lru_.end()) {
    total_ -= best->bytes;
    lease.session = std::move(best->session);
    lease.common_prefix = best_len;
    lru_.erase(best);
    return lease;
  }
  lock.unlock();
  // No shared prefix: a fresh session (allocation outside the lock).
  lease.session = std::make_unique<Session>(model_, options_);
  return lease;
}

void PrefixCache::release(std::unique_ptr<Session> session) {
  if (!session || session->size() == 0) return;
  const size_t b = session->memory_bytes();
  std::lock_guard lock(mu_);
  lru_.push_front(Entry{std::move(session), b});
  total_ += b;
  evict_locked();
}

void PrefixCache::evict_locked() {
  while (!lru_.empty() && total_ > budget_) {
    total_ -= lru_.back().bytes;
    lru_.pop_back();
  }
}

int64_t PrefixCache::entries() const {
  std::lock_guard lock(mu_);
  return static_cast<int64_t>(lru_.size());
}

int64_t PrefixCache::bytes() const {
  std::lock_guard lock(mu_);
  return static_cast<int64_t>(total_);
}

void PrefixCache::clear() {
  std::lock_guard lock(mu_);
  lru_.clear();
  total_ = 0;
}

}  // namespace dsv4::server
