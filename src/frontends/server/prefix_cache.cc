#include "frontends/server/prefix_cache.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "base/error.h"
#include "base/file.h"
#include "model/state_io.h"

namespace dsv4::server {

namespace {
constexpr const char* kExt = ".dsv4pc";
namespace fs = std::filesystem;

int64_t common_prefix(const std::vector<int64_t>& toks, std::span<const int64_t> prompt) {
  const size_t n = std::min(toks.size(), prompt.size());
  const auto mm = std::mismatch(toks.begin(), toks.begin() + static_cast<ptrdiff_t>(n), prompt.begin());
  return mm.first - toks.begin();
}

std::string mib(uint64_t b) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1 << 20));
  return buf;
}
}  // namespace

PrefixCache::PrefixCache(std::shared_ptr<const ModelWeights> model, SessionOptions options, size_t budget_bytes,
                         PrefixCacheDiskOptions disk, LogFn log)
    : model_(std::move(model)), options_(options), budget_(budget_bytes), disk_(std::move(disk)), log_(std::move(log)) {
  if (!disk_.dir.empty()) {
    fingerprint_ = model_fingerprint(*model_);
    index_disk();
    writer_ = std::thread([this] { writer_loop(); });
  }
}

PrefixCache::~PrefixCache() {
  {
    std::lock_guard lock(mu_);
    stop_writer_ = true;
  }
  writer_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

void PrefixCache::writer_loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    writer_cv_.wait(lock, [&] { return stop_writer_ || !pending_.empty(); });
    if (pending_.empty()) break;  // stopping, and every queued write is done
    std::unique_ptr<Session> s = std::move(pending_.back());
    pending_.pop_back();
    writer_busy_ = true;
    lock.unlock();
    write_to_disk(*s);
    s.reset();
    lock.lock();
    writer_busy_ = false;
    idle_cv_.notify_all();
  }
}

void PrefixCache::wait_for_writes() {
  std::unique_lock lock(mu_);
  idle_cv_.wait(lock, [&] { return pending_.empty() && !writer_busy_; });
}

void PrefixCache::warn(const std::string& msg) const {
  if (log_) log_(msg);
  else {
    fprintf(stderr, "%s\n", msg.c_str());
    fflush(stderr);
  }
}

std::string PrefixCache::file_name(const std::vector<int64_t>& tokens) const {
  // FNV-1a over what identifies the state: model, numerics, horizon, tokens.
  uint64_t h = 0xcbf29ce484222325ull;
  auto add = [&](int64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= static_cast<uint8_t>(v >> (8 * i));
      h *= 0x100000001b3ull;
    }
  };
  add(static_cast<int64_t>(fingerprint_));
  add(static_cast<int64_t>(options_.numerics));
  add(options_.rewind_horizon);
  for (int64_t t : tokens) add(t);
  char buf[32];
  snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return (fs::path(disk_.dir) / (std::string(buf) + kExt)).string();
}

void PrefixCache::index_disk() {
  std::error_code ec;
  fs::create_directories(disk_.dir, ec);
  if (ec || !fs::is_directory(disk_.dir)) throw Error(disk_.dir + ": cannot create the prefix cache directory: " + ec.message());
  struct Found {
    DiskEntry e;
    fs::file_time_type mtime;
  };
  std::vector<Found> found;
  for (const fs::directory_entry& de : fs::directory_iterator(disk_.dir, ec)) {
    const std::string path = de.path().string();
    const std::string name = de.path().filename().string();
    if (name.find(std::string(kExt) + ".tmp.") != std::string::npos) {
      // A write that never finished (the process died before the rename).
      fs::remove(de.path(), ec);
      continue;
    }
    if (!de.is_regular_file(ec)) continue;
    try {
      if (name.size() <= std::string(kExt).size() || name.compare(name.size() - std::string(kExt).size(), std::string::npos, kExt) != 0)
        throw Error(path + ": not a session file (no " + kExt + " extension)");
      std::ifstream in(path, std::ios::binary);
      if (!in) throw Error(path + ": cannot open");
      std::string head(kStateHeaderBytes, '\0');
      in.read(head.data(), static_cast<std::streamsize>(head.size()));
      head.resize(static_cast<size_t>(in.gcount()));
      const StateFileHeader h = parse_state_header(head, path);
      if (h.fingerprint != fingerprint_) throw Error(path + ": written for another model (model fingerprint differs)");
      if (h.numerics != options_.numerics) throw Error(path + ": written in another numerics mode");
      if (h.rewind_horizon != options_.rewind_horizon)
        throw Error(path + ": written with rewind horizon " + std::to_string(h.rewind_horizon) + ", this server uses " +
                    std::to_string(options_.rewind_horizon));
      const uint64_t size = static_cast<uint64_t>(de.file_size());
      if (size != h.file_bytes())
        throw Error(path + ": file size is " + std::to_string(size) + " bytes, the header announces " + std::to_string(h.file_bytes()));
      if (h.n_tokens == 0) throw Error(path + ": no tokens");
      head.resize(kStateHeaderBytes + static_cast<size_t>(h.n_tokens) * 4);
      in.read(head.data() + kStateHeaderBytes, static_cast<std::streamsize>(h.n_tokens * 4));
      if (in.gcount() != h.n_tokens * 4) throw Error(path + ": truncated token array");
      Found f;
      f.e.path = path;
      f.e.tokens = parse_state_tokens(head, h, path);
      f.e.bytes = size;
      f.mtime = de.last_write_time(ec);
      found.push_back(std::move(f));
    } catch (const std::exception& e) {
      ++disk_skipped_;
      warn(std::string("dsv4 serve: prefix cache: skipping ") + e.what());
    }
  }
  if (ec) throw Error(disk_.dir + ": cannot read the prefix cache directory: " + ec.message());
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) { return a.mtime > b.mtime; });
  std::lock_guard lock(mu_);
  for (Found& f : found) {
    disk_total_ += f.e.bytes;
    disk_lru_.push_back(std::move(f.e));
  }
  while (!disk_lru_.empty() && disk_total_ > disk_.budget_bytes) {
    fs::remove(disk_lru_.back().path, ec);
    disk_total_ -= disk_lru_.back().bytes;
    disk_lru_.pop_back();
  }
  warn("dsv4 serve: prefix cache: " + std::to_string(disk_lru_.size()) + " entries (" + mib(disk_total_) + ") on disk in " + disk_.dir);
}

PrefixCache::Lease PrefixCache::acquire(std::span<const int64_t> prompt) {
  for (;;) {
    std::unique_lock lock(mu_);
    auto best = lru_.end();
    int64_t best_len = 0;
    // Entries are ranked by what the session can really reuse: one whose shared prefix lies
    // too far back to rewind to would only be reset, so it stays in the cache untouched.
    for (auto it = lru_.begin(); it != lru_.end(); ++it) {
      const int64_t len = it->session->reusable_prefix(prompt);
      if (len > best_len) {
        best_len = len;
        best = it;
      }
    }
    // Evicted sessions still waiting for the writer are as good as RAM entries.
    auto pbest = pending_.end();
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      const int64_t len = (*it)->reusable_prefix(prompt);
      if (len > best_len) {
        best_len = len;
        pbest = it;
      }
    }
    auto dbest = disk_lru_.end();
    int64_t dbest_len = best_len;
    // The disk index knows the tokens but not the checkpoint: a file is taken only when its
    // whole sequence is a prefix of the prompt or the rewind horizon reaches the shared prefix.
    for (auto it = disk_lru_.begin(); it != disk_lru_.end(); ++it) {
      const int64_t size = static_cast<int64_t>(it->tokens.size());
      const int64_t common = std::min<int64_t>(common_prefix(it->tokens, prompt), static_cast<int64_t>(prompt.size()) - 1);
      const int64_t len = common == size || common >= size - options_.rewind_horizon ? common : 0;
      if (len > dbest_len) {
        dbest_len = len;
        dbest = it;
      }
    }
    Lease lease;
    if (dbest != disk_lru_.end()) {
      // A longer prefix on disk: take it out of the index and load it outside the lock.
      DiskEntry e = std::move(*dbest);
      disk_lru_.erase(dbest);
      disk_total_ -= e.bytes;
      lock.unlock();
      std::error_code ec;
      try {
        const std::string bytes = read_file(e.path);
        auto s = std::make_unique<Session>(model_, options_);
        s->load(bytes, fingerprint_, e.path);
        fs::remove(e.path, ec);  // the entry now lives in RAM (written back when evicted)
        ++disk_hits_;
        lease.session = std::move(s);
        lease.common_prefix = dbest_len;
        lease.from_disk = true;
        return lease;
      } catch (const std::exception& ex) {
        ++disk_skipped_;
        ++disk_errors_;
        warn(std::string("dsv4 serve: prefix cache: skipping ") + ex.what());
        continue;  // look again without it
      }
    }
    if (pbest != pending_.end()) {
      lease.session = std::move(*pbest);
      lease.common_prefix = best_len;
      pending_.erase(pbest);
      if (pending_.empty() && !writer_busy_) idle_cv_.notify_all();
      return lease;
    }
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
}

void PrefixCache::release(std::unique_ptr<Session> session) {
  if (!session || session->size() == 0) return;
  const size_t b = session->memory_bytes();
  {
    std::lock_guard lock(mu_);
    lru_.push_front(Entry{std::move(session), b});
    total_ += b;
    evict_locked();
  }
  writer_cv_.notify_one();
}

void PrefixCache::evict_locked() {
  while (!lru_.empty() && total_ > budget_) {
    total_ -= lru_.back().bytes;
    // With a disk tier the writer takes it (oldest first: pending_'s back is the oldest).
    if (!disk_.dir.empty()) pending_.push_front(std::move(lru_.back().session));
    lru_.pop_back();
  }
}

void PrefixCache::write_to_disk(const Session& s) {
  if (s.size() == 0) return;
  std::lock_guard io(disk_io_mu_);
  const std::string path = file_name(s.tokens());
  try {
    const std::string bytes = s.save(fingerprint_);
    if (bytes.size() > disk_.budget_bytes) return;  // would evict everything and still not fit
    write_file_atomic(path, bytes);
    ++disk_writes_;
    std::vector<std::string> remove;
    {
      std::lock_guard lock(mu_);
      for (auto it = disk_lru_.begin(); it != disk_lru_.end(); ++it)
        if (it->path == path) {  // same tokens written again: replaced by the rename
          disk_total_ -= it->bytes;
          disk_lru_.erase(it);
          break;
        }
      disk_lru_.push_front(DiskEntry{path, s.tokens(), bytes.size()});
      disk_total_ += bytes.size();
      while (disk_total_ > disk_.budget_bytes && disk_lru_.size() > 1) {
        remove.push_back(disk_lru_.back().path);
        disk_total_ -= disk_lru_.back().bytes;
        disk_lru_.pop_back();
      }
    }
    std::error_code ec;
    for (const std::string& p : remove) fs::remove(p, ec);
  } catch (const std::exception& e) {
    ++disk_errors_;
    warn(std::string("dsv4 serve: prefix cache: cannot write ") + path + ": " + e.what());
  }
}

void PrefixCache::persist() {
  if (disk_.dir.empty()) return;
  const uint64_t before = disk_writes_.load();
  {
    std::lock_guard lock(mu_);
    // Every RAM entry is newer than the queued ones: queue them oldest first at the front.
    for (auto it = lru_.rbegin(); it != lru_.rend(); ++it) pending_.push_front(std::move(it->session));
    lru_.clear();
    total_ = 0;
  }
  writer_cv_.notify_one();
  wait_for_writes();
  DiskStats st = disk_stats();
  warn("dsv4 serve: prefix cache: wrote " + std::to_string(disk_writes_.load() - before) + " entries to " + disk_.dir + " (" +
       std::to_string(st.entries) + " entries, " + mib(static_cast<uint64_t>(st.bytes)) + " on disk)");
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

PrefixCache::DiskStats PrefixCache::disk_stats() const {
  DiskStats s;
  s.enabled = !disk_.dir.empty();
  {
    std::lock_guard lock(mu_);
    s.entries = static_cast<int64_t>(disk_lru_.size());
    s.bytes = static_cast<int64_t>(disk_total_);
  }
  s.hits = disk_hits_.load();
  s.hit_tokens = disk_hit_tokens_.load();
  s.writes = disk_writes_.load();
  s.errors = disk_errors_.load();
  s.skipped = disk_skipped_.load();
  return s;
}

}  // namespace dsv4::server
