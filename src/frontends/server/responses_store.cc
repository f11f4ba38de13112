#include "frontends/server/responses_store.h"

#include "frontends/server/scheduler.h"

namespace dsv4::server {

void ResponsesStore::expire(Clock::time_point now) {
  while (!by_time_.empty()) {
    auto it = by_time_.begin();
    const bool old = now - it->first > ttl_;
    if (!old && entries_.size() <= max_) break;
    auto e = entries_.find(it->second);
    if (e != entries_.end() && e->second.at == it->first) entries_.erase(e);
    by_time_.erase(it);
  }
}

void ResponsesStore::put(const std::string& id, StoredResponse r) {
  if (max_ == 0) return;
  std::lock_guard lock(mu_);
  const auto now = Clock::now();
  entries_[id] = Entry{std::move(r), now};
  by_time_.emplace(now, id);
  expire(now);
}

std::optional<StoredResponse> ResponsesStore::get(const std::string& id) {
  std::lock_guard lock(mu_);
  expire(Clock::now());
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  return it->second.value;
}

bool ResponsesStore::erase(const std::string& id) {
  std::lock_guard lock(mu_);
  expire(Clock::now());
  return entries_.erase(id) > 0;  // its by_time_ record goes when it comes up (time mismatch or absent)
}

void ResponsesStore::track(const std::string& id, const std::shared_ptr<Job>& job, Json snapshot) {
  std::lock_guard lock(mu_);
  live_[id] = Live{job, std::move(snapshot)};
}

void ResponsesStore::untrack(const std::string& id) {
  std::lock_guard lock(mu_);
  live_.erase(id);
}

std::optional<Json> ResponsesStore::cancel(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = live_.find(id);
  if (it == live_.end()) return std::nullopt;
  if (auto job = it->second.job.lock()) job->cancelled = true;
  return it->second.snapshot;
}

size_t ResponsesStore::size() {
  std::lock_guard lock(mu_);
  expire(Clock::now());
  return entries_.size();
}

}  // namespace dsv4::server
