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
// Disk tier (optional, `dsv4 serve --prefix-cache-dir DIR`): sessions evicted from RAM, and
// every RAM entry at shutdown (persist()), are written to DIR as session files (format:
// model/state_io.h; name: a hash of model fingerprint, numerics, horizon and tokens, ".dsv4pc")
// with atomic writes (temp file, fsync, rename, fsync of the directory), within a disk budget
// (least recently written files go first). At startup the directory is indexed from each file's
// header and token array only (the state is read lazily); files that are corrupt, truncated,
// of another model, numerics mode or rewind horizon, or not session files are skipped with one
// warning line each and left alone. acquire() looks for the longest common prefix over RAM and
// disk; a disk entry that wins is loaded (all checks of Session::load), and its file removed
// (the entry moves to RAM, like a RAM entry is taken out of the pool); a file that fails to load
// is skipped with a warning and the lookup goes on without it. Disk writes happen on a writer
// thread of the cache, so an eviction never stalls the scheduler: evicted sessions wait in a
// queue (still found by acquire(), outside the RAM budget until written), oldest first.
//
// Not done: sharing one cached prefix between two concurrent requests (the second one gets a
// fresh session).
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <functional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "engine/session.h"

namespace dsv4::server {

struct PrefixCacheDiskOptions {
  std::string dir;          // empty: RAM only
  size_t budget_bytes = 0;  // total size of the session files
};

class PrefixCache {
 public:
  // One line per warning / notice (default: stderr).
  using LogFn = std::function<void(const std::string&)>;
  // With a disk directory: creates it if needed and indexes it (throws Error if it cannot be
  // created or read).
  PrefixCache(std::shared_ptr<const ModelWeights> model, SessionOptions options, size_t budget_bytes,
              PrefixCacheDiskOptions disk = {}, LogFn log = {});
  ~PrefixCache();  // finishes queued disk writes
  PrefixCache(const PrefixCache&) = delete;
  PrefixCache& operator=(const PrefixCache&) = delete;

  struct Lease {
    std::unique_ptr<Session> session;
    int64_t common_prefix = 0;  // prompt tokens the session can reuse (Session::reusable_prefix)
    bool from_disk = false;     // the session was loaded from the disk tier
  };
  Lease acquire(std::span<const int64_t> prompt);
  void release(std::unique_ptr<Session> session);
  // Writes every RAM entry to the disk tier (least recently used first), empties RAM and waits
  // for every queued write; no-op without a disk directory. For shutdown.
  void persist();
  // Waits until the writer thread has written every queued eviction (tests).
  void wait_for_writes();
  // Counts prompt tokens that a disk entry served (what Session::prefill reused).
  void note_disk_reuse(int64_t tokens) { disk_hit_tokens_ += static_cast<uint64_t>(tokens); }

  int64_t entries() const;
  int64_t bytes() const;
  void clear();

  struct DiskStats {
    bool enabled = false;
    int64_t entries = 0, bytes = 0;  // indexed session files
    uint64_t hits = 0;               // acquires served by a disk entry
    uint64_t hit_tokens = 0;         // prompt tokens those served
    uint64_t writes = 0;             // session files written
    uint64_t errors = 0;             // failed writes / loads
    uint64_t skipped = 0;            // files skipped at startup or on load
  };
  DiskStats disk_stats() const;

 private:
  struct DiskEntry {
    std::string path;
    std::vector<int64_t> tokens;
    uint64_t bytes = 0;
  };
  void evict_locked();
  void writer_loop();
  void index_disk();
  void write_to_disk(const Session& s);
  void warn(const std::string& msg) const;
  std::string file_name(const std::vector<int64_t>& tokens) const;
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
  // Disk tier (index under mu_; file writes serialised by disk_io_mu_).
  PrefixCacheDiskOptions disk_;
  LogFn log_;
  uint64_t fingerprint_ = 0;
  std::mutex disk_io_mu_;
  std::list<DiskEntry> disk_lru_;  // front = most recently written
  uint64_t disk_total_ = 0;
  std::atomic<uint64_t> disk_hits_{0}, disk_hit_tokens_{0}, disk_writes_{0}, disk_errors_{0}, disk_skipped_{0};
  // Evicted sessions waiting for the writer (under mu_; front = newest, the writer takes the back).
  std::deque<std::unique_ptr<Session>> pending_;
  bool writer_busy_ = false, stop_writer_ = false;
  std::condition_variable writer_cv_, idle_cv_;
  std::thread writer_;  // last member: started once everything else exists
};

}  // namespace dsv4::server
