// Server counters, exported in the Prometheus text format at /metrics. Lock-free counters;
// gauges are read from the scheduler when the page is rendered.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>

namespace dsv4::server {

struct Metrics {
  std::atomic<uint64_t> requests_total{0};
  std::atomic<uint64_t> requests_failed{0};      // answered with a 4xx/5xx error
  std::atomic<uint64_t> requests_cancelled{0};   // client went away
  std::atomic<uint64_t> prompt_tokens{0};
  std::atomic<uint64_t> prompt_cache_hit_tokens{0};
  std::atomic<uint64_t> generated_tokens{0};
  std::atomic<uint64_t> decode_steps{0};         // engine steps over all active slots
  std::atomic<uint64_t> decode_step_sequences{0};  // sum of active slots over steps
  std::atomic<uint64_t> prefill_micros{0};
  std::atomic<uint64_t> decode_micros{0};
  std::atomic<uint64_t> spec_drafted{0};   // tokens drafted by the MTP block (speculative decoding)
  std::atomic<uint64_t> spec_accepted{0};  // drafted tokens kept

  // Renders the page; the gauges are passed in by the caller.
  std::string prometheus(int64_t active, int64_t queued, int64_t parallel, int64_t cache_entries,
                         int64_t cache_bytes) const;
};

// The prefix cache's disk tier (PrefixCache::DiskStats), rendered after the page above; empty
// when the server has no --prefix-cache-dir.
struct DiskCacheMetrics {
  bool enabled = false;
  int64_t entries = 0, bytes = 0;
  uint64_t hits = 0, hit_tokens = 0, writes = 0, errors = 0, skipped = 0;
};
std::string prometheus_disk_cache(const DiskCacheMetrics& d);

}  // namespace dsv4::server
