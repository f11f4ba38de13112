#include "frontends/server/metrics.h"

namespace dsv4::server {

namespace {
void line(std::string& out, const char* name, const char* type, const char* help, double v) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
  out += name;
  out += ' ';
  char buf[64];
  snprintf(buf, sizeof buf, "%.17g", v);
  out += buf;
  out += '\n';
}
}  // namespace

std::string Metrics::prometheus(int64_t active, int64_t queued, int64_t parallel, int64_t cache_entries,
                                int64_t cache_bytes) const {
  std::string o;
  auto c = [&](const char* n, const char* h, const std::atomic<uint64_t>& v) {
    line(o, n, "counter", h, static_cast<double>(v.load()));
  };
  c("dsv4_requests_total", "Generation requests received.", requests_total);
  c("dsv4_requests_failed_total", "Requests answered with an error status.", requests_failed);
  c("dsv4_requests_cancelled_total", "Requests cancelled because the client disconnected.", requests_cancelled);
  c("dsv4_prompt_tokens_total", "Prompt tokens of admitted requests.", prompt_tokens);
  c("dsv4_prompt_cache_hit_tokens_total", "Prompt tokens served from the prefix cache.", prompt_cache_hit_tokens);
  c("dsv4_generated_tokens_total", "Generated tokens.", generated_tokens);
  c("dsv4_decode_steps_total", "Engine decode steps (one step advances every active slot).", decode_steps);
  c("dsv4_decode_step_sequences_total", "Sum over decode steps of the sequences advanced.", decode_step_sequences);
  c("dsv4_spec_drafted_tokens_total", "Tokens drafted by the MTP block (speculative decoding).", spec_drafted);
  c("dsv4_spec_accepted_tokens_total", "Drafted tokens accepted by verification.", spec_accepted);
  line(o, "dsv4_prefill_seconds_total", "counter", "Time spent in prompt prefill.", prefill_micros.load() / 1e6);
  line(o, "dsv4_decode_seconds_total", "counter", "Time spent in decode steps.", decode_micros.load() / 1e6);
  line(o, "dsv4_active_slots", "gauge", "Sequences decoding now.", static_cast<double>(active));
  line(o, "dsv4_queued_requests", "gauge", "Requests waiting for a slot.", static_cast<double>(queued));
  line(o, "dsv4_parallel_slots", "gauge", "Configured --parallel.", static_cast<double>(parallel));
  line(o, "dsv4_prefix_cache_entries", "gauge", "Finished sessions kept for prefix reuse.", static_cast<double>(cache_entries));
  line(o, "dsv4_prefix_cache_bytes", "gauge", "Approximate memory of the prefix cache.", static_cast<double>(cache_bytes));
  return o;
}

std::string prometheus_disk_cache(const DiskCacheMetrics& d) {
  std::string o;
  if (!d.enabled) return o;
  auto c = [&](const char* n, const char* h, uint64_t v) { line(o, n, "counter", h, static_cast<double>(v)); };
  c("dsv4_prefix_cache_disk_hits_total", "Requests whose cached prefix was loaded from the disk tier.", d.hits);
  c("dsv4_prefix_cache_disk_hit_tokens_total", "Prompt tokens served by prefixes loaded from the disk tier.", d.hit_tokens);
  c("dsv4_prefix_cache_disk_writes_total", "Session files written to the disk tier.", d.writes);
  c("dsv4_prefix_cache_disk_errors_total", "Failed disk tier writes or loads.", d.errors);
  c("dsv4_prefix_cache_disk_skipped_files_total", "Files in the cache directory skipped (corrupt, foreign, unreadable).", d.skipped);
  line(o, "dsv4_prefix_cache_disk_entries", "gauge", "Session files in the disk tier.", static_cast<double>(d.entries));
  line(o, "dsv4_prefix_cache_disk_bytes", "gauge", "Bytes of the session files in the disk tier.", static_cast<double>(d.bytes));
  return o;
}

}  // namespace dsv4::server
