// The in-memory store of the Responses API (`store: true`, the default): finished responses by
// id, for GET / DELETE /v1/responses/{id} and for `previous_response_id`, which continues the
// stored conversation (its chat messages, reasoning and tool calls included). Bounded by a
// count (oldest evicted first) and a time to live; the server's responses in flight are kept
// here too, so POST /v1/responses/{id}/cancel can reach their jobs. Thread-safe.
#pragma once
#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "frontends/server/json_fields.h"

namespace dsv4::server {

class Job;

struct StoredResponse {
  Json response;  // the response object as GET returns it
  Json messages;  // the conversation in chat form (without `instructions`), this response's output included
};

class ResponsesStore {
 public:
  using Clock = std::chrono::steady_clock;
  ResponsesStore(size_t max_entries, std::chrono::seconds ttl) : max_(max_entries), ttl_(ttl) {}

  void put(const std::string& id, StoredResponse r);
  std::optional<StoredResponse> get(const std::string& id);
  bool erase(const std::string& id);

  // Responses being generated (whatever `store` says), for cancel.
  void track(const std::string& id, const std::shared_ptr<Job>& job, Json snapshot);
  void untrack(const std::string& id);
  // Cancels a response in flight; returns its snapshot (status in_progress), or nullopt.
  std::optional<Json> cancel(const std::string& id);

  size_t size();

 private:
  void expire(Clock::time_point now);
  struct Entry {
    StoredResponse value;
    Clock::time_point at;
  };
  size_t max_;
  std::chrono::seconds ttl_;
  std::mutex mu_;
  std::map<std::string, Entry> entries_;
  std::multimap<Clock::time_point, std::string> by_time_;
  struct Live {
    std::weak_ptr<Job> job;
    Json snapshot;
  };
  std::map<std::string, Live> live_;
};

}  // namespace dsv4::server
