// The prefix cache's disk tier: entries evicted from RAM and persisted at shutdown are found
// again (also by a new cache on the same directory, as after a restart) and reused exactly;
// the disk budget holds; corrupt, truncated and foreign files are skipped with one warning each
// and never crash a lookup (this test runs under ASan).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "base/error.h"
#include "base/file.h"
#include "model/state_io.h"
#include "frontends/server/prefix_cache.h"
#include "model/safetensors.h"
#include "model/weights.h"

namespace dsv4::server {
namespace {
namespace fs = std::filesystem;

std::shared_ptr<const ModelWeights> tiny_a() {
  static auto w = load_model(std::string(DSV4_TEST_DATA_DIR) + "/tiny-a/checkpoint");
  return w;
}
std::vector<int64_t> seq(size_t n, size_t from = 0) {
  static auto t = TensorStore::open_file(std::string(DSV4_TEST_DATA_DIR) + "/tiny-a/tokens.safetensors").read_i64("seq1");
  return std::vector<int64_t>(t.begin() + static_cast<ptrdiff_t>(from), t.begin() + static_cast<ptrdiff_t>(from + n));
}
SessionOptions opts() {
  SessionOptions o;
  o.rewind_horizon = 8;
  return o;
}

struct TmpDir {
  fs::path p;
  TmpDir() : p(fs::temp_directory_path() / ("dsv4_pcache_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++))) {
    fs::remove_all(p);
  }
  ~TmpDir() { fs::remove_all(p); }
  static int& counter() {
    static int c = 0;
    return c;
  }
  std::vector<fs::path> files(const std::string& ext = ".dsv4pc") const {
    std::vector<fs::path> v;
    if (!fs::exists(p)) return v;
    for (auto& e : fs::directory_iterator(p))
      if (e.path().extension() == ext) v.push_back(e.path());
    return v;
  }
};

struct Log {
  std::vector<std::string> lines;
  PrefixCache::LogFn fn() {
    return [this](const std::string& s) { lines.push_back(s); };
  }
  int count(const std::string& part) const {
    int n = 0;
    for (auto& l : lines) n += l.find(part) != std::string::npos;
    return n;
  }
};

// Runs `prompt` through a leased session (prefill + checkpoint, as the scheduler does) and
// puts it back.
void serve(PrefixCache& c, const std::vector<int64_t>& prompt) {
  auto l = c.acquire(prompt);
  l.session->prefill(prompt);
  l.session->checkpoint();
  c.release(std::move(l.session));
}

std::vector<float> fresh_logits(const std::vector<int64_t>& prompt) {
  Session s(tiny_a(), opts());
  auto l = s.prefill(prompt).logits;
  return std::vector<float>(l.begin(), l.end());
}

TEST(PrefixCacheDisk, PersistThenRestartReusesExactly) {
  TmpDir d;
  const auto p1 = seq(70);
  {
    Log log;
    PrefixCache c(tiny_a(), opts(), size_t(1) << 30, {d.p.string(), size_t(1) << 30}, log.fn());
    serve(c, p1);
    EXPECT_TRUE(d.files().empty()) << "RAM budget not exceeded: nothing written yet";
    c.persist();
    EXPECT_EQ(c.entries(), 0);
    EXPECT_EQ(d.files().size(), 1u);
    EXPECT_EQ(c.disk_stats().writes, 1u);
    EXPECT_EQ(log.count("wrote 1 entries"), 1);
  }
  Log log;
  PrefixCache c(tiny_a(), opts(), size_t(1) << 30, {d.p.string(), size_t(1) << 30}, log.fn());
  EXPECT_EQ(log.count("1 entries"), 1) << "startup line";
  EXPECT_EQ(c.disk_stats().entries, 1);
  const auto p2 = seq(90);  // extends p1
  auto l = c.acquire(p2);
  EXPECT_TRUE(l.from_disk);
  EXPECT_EQ(l.common_prefix, 70);
  EXPECT_EQ(l.session->tokens(), p1);
  auto pre = l.session->prefill(p2);
  EXPECT_EQ(pre.reused, 70);
  const auto ref = fresh_logits(p2);
  ASSERT_EQ(pre.logits.size(), ref.size());
  EXPECT_EQ(std::memcmp(pre.logits.data(), ref.data(), ref.size() * 4), 0);
  EXPECT_TRUE(d.files().empty()) << "a loaded entry moves to RAM";
  EXPECT_EQ(c.disk_stats().hits, 1u);
  EXPECT_TRUE(log.lines.size() == 1) << log.lines.back();
}

TEST(PrefixCacheDisk, EvictedEntriesGoToDiskAndComeBack) {
  TmpDir d;
  Session probe(tiny_a(), opts());
  probe.prefill(seq(20));
  probe.checkpoint();
  const size_t one = probe.memory_bytes();
  Log log;
  PrefixCache c(tiny_a(), opts(), one + one / 2, {d.p.string(), size_t(1) << 30}, log.fn());
  for (size_t k = 0; k < 3; ++k) serve(c, seq(20, 10 * k + 1));
  EXPECT_EQ(c.entries(), 1);
  c.wait_for_writes();
  EXPECT_EQ(d.files().size(), 2u);
  EXPECT_EQ(c.disk_stats().entries, 2);
  // The oldest comes back from disk, with an exact continuation.
  auto prompt = seq(25, 1);
  auto l = c.acquire(prompt);
  EXPECT_TRUE(l.from_disk);
  EXPECT_EQ(l.common_prefix, 20);
  auto pre = l.session->prefill(prompt);
  const auto ref = fresh_logits(prompt);
  EXPECT_EQ(std::memcmp(pre.logits.data(), ref.data(), ref.size() * 4), 0);
  // A RAM entry with the longest prefix wins over disk entries.
  auto l2 = c.acquire(seq(22, 21));
  EXPECT_FALSE(l2.from_disk);
  EXPECT_EQ(l2.common_prefix, 20);
}

TEST(PrefixCacheDisk, DiskBudgetDropsOldestFiles) {
  TmpDir d;
  Session probe(tiny_a(), opts());
  probe.prefill(seq(20));
  probe.checkpoint();
  const size_t file = probe.save(model_fingerprint(*tiny_a())).size();
  PrefixCache c(tiny_a(), opts(), 0, {d.p.string(), 2 * file + file / 2}, [](const std::string&) {});
  for (size_t k = 0; k < 4; ++k) serve(c, seq(20, 10 * k + 1));  // RAM budget 0: every release spills
  c.wait_for_writes();
  EXPECT_EQ(d.files().size(), 2u);
  EXPECT_LE(c.disk_stats().bytes, static_cast<int64_t>(2 * file + file / 2));
  EXPECT_EQ(c.acquire(seq(20, 1)).common_prefix, 0) << "oldest dropped";
  EXPECT_EQ(c.acquire(seq(20, 31)).common_prefix, 19) << "newest kept (the last prompt token is always run)";
}

TEST(PrefixCacheDisk, CorruptAndForeignFilesAreSkippedWithOneWarning) {
  TmpDir d;
  {
    PrefixCache c(tiny_a(), opts(), size_t(1) << 30, {d.p.string(), size_t(1) << 30}, [](const std::string&) {});
    serve(c, seq(40));
    serve(c, seq(30, 50));
    c.persist();
  }
  auto files = d.files();
  ASSERT_EQ(files.size(), 2u);
  const std::string good = read_file(files[0].string());
  // Garbage with the right extension, a truncated copy, a file of another numerics mode /
  // model (header edits break its CRC), an unrelated file, a stale temp file.
  write_file_atomic((d.p / "garbage.dsv4pc").string(), "this is not a session file");
  write_file_atomic((d.p / "truncated.dsv4pc").string(), good.substr(0, good.size() / 2));
  std::string other = good;
  other[16] ^= 1;
  write_file_atomic((d.p / "other.dsv4pc").string(), other);
  write_file_atomic((d.p / "notes.txt").string(), "hello");
  write_file_atomic((d.p / "x.dsv4pc.tmp.123").string(), good);
  // The second real file: valid header and tokens, corrupt state payload (found at lookup).
  std::string bad_payload = read_file(files[1].string());
  bad_payload[bad_payload.size() - 10] ^= 0x55;
  write_file_atomic(files[1].string(), bad_payload);
  Log log;
  PrefixCache c(tiny_a(), opts(), size_t(1) << 30, {d.p.string(), size_t(1) << 30}, log.fn());
  EXPECT_EQ(log.count("skipping"), 4) << [&] {
    std::string s;
    for (auto& l : log.lines) s += l + "\n";
    return s;
  }();
  EXPECT_EQ(log.count("garbage.dsv4pc: header"), 1);
  EXPECT_EQ(log.count("truncated.dsv4pc: file size"), 1);
  EXPECT_EQ(log.count("other.dsv4pc: header crc"), 1);
  EXPECT_EQ(log.count("notes.txt: not a session file"), 1);
  EXPECT_FALSE(fs::exists(d.p / "x.dsv4pc.tmp.123")) << "stale temp files are removed";
  EXPECT_EQ(c.disk_stats().entries, 2);
  EXPECT_EQ(c.disk_stats().skipped, 4u);
  // Both real entries are found; the corrupt one warns once and the lookup goes on.
  for (const auto& prompt : {seq(45), seq(35, 50)}) {
    auto l = c.acquire(prompt);
    auto pre = l.session->prefill(prompt);
    const auto ref = fresh_logits(prompt);
    EXPECT_EQ(std::memcmp(pre.logits.data(), ref.data(), ref.size() * 4), 0);
  }
  EXPECT_EQ(log.count("skipping"), 5);
  EXPECT_EQ(log.count("payload crc"), 1);
  EXPECT_EQ(c.disk_stats().hits, 1u);
  EXPECT_EQ(c.disk_stats().entries, 0);
}

TEST(PrefixCacheDisk, UnusableDirectoryIsAnError) {
  TmpDir d;
  write_file_atomic(d.p.string(), "a file, not a directory");
  EXPECT_THROW(PrefixCache(tiny_a(), opts(), 1, {d.p.string(), 1}, [](const std::string&) {}), Error);
  fs::remove(d.p);
}

}  // namespace
}  // namespace dsv4::server
