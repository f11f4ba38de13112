// Loader tests: the tiny-a checkpoint binds; every kind of corrupt input is rejected with
// an error that names the culprit (in process, and through `dsv4 check` as a clean exit).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/file.h"
#include "model/weights.h"

namespace fs = std::filesystem;
using namespace dsv4;

namespace {

const std::string kCheckpoint = std::string(DSV4_TEST_DATA_DIR) + "/tiny-a/checkpoint";

// A writable copy of the tiny-a checkpoint in a fresh temp dir.
struct TempModel {
  fs::path dir;
  TempModel() {
    dir = fs::temp_directory_path() / ("dsv4_loader_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
    fs::remove_all(dir);
    fs::create_directories(dir);
    for (const auto& e : fs::directory_iterator(kCheckpoint))
      if (e.is_regular_file()) fs::copy_file(e.path(), dir / e.path().filename());
    for (const auto& e : fs::directory_iterator(dir)) fs::permissions(e.path(), fs::perms::owner_read | fs::perms::owner_write);
  }
  ~TempModel() { fs::remove_all(dir); }
  static int& counter() {
    static int c = 0;
    return c;
  }
  std::string path(const std::string& f) const { return (dir / f).string(); }
  std::string read(const std::string& f) const { return read_file(path(f)); }
  void write(const std::string& f, const std::string& bytes) const {
    std::ofstream o(path(f), std::ios::binary | std::ios::trunc);
    o << bytes;
  }
  // Header JSON of a shard, and a function to write it back with the same data section.
  nlohmann::json header(const std::string& f) const {
    std::string b = read(f);
    uint64_t n;
    std::memcpy(&n, b.data(), 8);
    return nlohmann::json::parse(b.substr(8, n));
  }
  void set_header(const std::string& f, const nlohmann::json& h) const {
    std::string b = read(f);
    uint64_t n;
    std::memcpy(&n, b.data(), 8);
    std::string data = b.substr(8 + n);
    std::string hs = h.dump();
    uint64_t hl = hs.size();
    std::string out(reinterpret_cast<const char*>(&hl), 8);
    write(f, out + hs + data);
  }
};

const std::string kShard1 = "model-00001-of-00002.safetensors";
const std::string kShard2 = "model-00002-of-00002.safetensors";

// Name of some tensor stored in shard `f`.
std::string tensor_in(const nlohmann::json& h, const std::string& prefix) {
  for (auto it = h.begin(); it != h.end(); ++it)
    if (it.key().rfind(prefix, 0) == 0) return it.key();
  return "";
}

void expect_error(const std::string& dir, const std::vector<std::string>& needles) {
  try {
    load_model(dir);
    FAIL() << "load_model accepted a corrupt model";
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "message '" << msg << "' lacks '" << n << "'";
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message must be one line: " << msg;
  }
  // The CLI exits non-zero with one line on stderr, and never crashes.
  std::string cmd = std::string(DSV4_BIN) + " check --model " + dir + " >/dev/null 2>&1";
  int rc = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(rc));
  EXPECT_EQ(WEXITSTATUS(rc), 1);
}

}  // namespace

TEST(Loader, TinyABindsEveryTensor) {
  auto w = load_model(kCheckpoint);
  const ModelConfig& c = w->config;
  EXPECT_EQ(c.dim, 256);
  EXPECT_EQ(c.n_layers, 3);
  EXPECT_EQ(w->store->tensors().size(), 291u);
  EXPECT_EQ(expected_tensors(c).size(), 291u);
  ASSERT_EQ(w->layers.size(), 3u);
  EXPECT_EQ(c.attention_kind(0), AttentionKind::kSlidingWindow);
  EXPECT_EQ(c.attention_kind(1), AttentionKind::kCsa);
  EXPECT_EQ(c.attention_kind(2), AttentionKind::kHca);
  EXPECT_TRUE(w->layers[1].attn.has_indexer);
  EXPECT_FALSE(w->layers[2].attn.has_indexer);
  EXPECT_TRUE(w->layers[2].attn.has_compressor);
  EXPECT_NE(w->layers[0].ffn.tid2eid, nullptr);
  EXPECT_EQ(w->layers[2].ffn.tid2eid, nullptr);
  EXPECT_NE(w->layers[2].ffn.bias, nullptr);
  ASSERT_EQ(w->mtp.size(), 1u);
  EXPECT_EQ(w->mtp[0].block.layer, 3);
  EXPECT_EQ(w->layers[0].ffn.experts[0].w1.format, WeightFormat::kFp4);
  EXPECT_EQ(w->layers[0].ffn.experts[0].w1.in, 256);
  EXPECT_EQ(w->layers[0].attn.wo_a.format, WeightFormat::kFp8Block);
}

// --no-mmap: the huge-page copy holds the file's bytes (a file over 2 MiB with a partial last
// page; an empty one), moves like a map, and a model loaded that way binds every tensor to a
// copy with the same bytes, for safetensors and GGUF.
TEST(Loader, HugePageCopyHasTheFileBytes) {
  TempModel m;
  const std::string path = m.path("pattern.bin");
  std::string bytes(static_cast<size_t>((3 << 20) + 123), '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>((i * 2654435761u) >> 13);
  write_file_atomic(path, bytes);
  MappedFile mapped(path), copied(path, FileMemory::kHugePageCopy);
  ASSERT_EQ(copied.size(), bytes.size());
  EXPECT_EQ(std::memcmp(copied.data(), bytes.data(), bytes.size()), 0);
  EXPECT_EQ(std::memcmp(copied.data(), mapped.data(), bytes.size()), 0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(copied.data()) % (uintptr_t{2} << 20), 0u);  // huge-page aligned
  MappedFile moved(std::move(copied));
  EXPECT_EQ(copied.data(), nullptr);
  ASSERT_EQ(moved.size(), bytes.size());
  EXPECT_EQ(std::memcmp(moved.data(), bytes.data(), bytes.size()), 0);
  write_file_atomic(m.path("empty.bin"), "");
  MappedFile empty(m.path("empty.bin"), FileMemory::kHugePageCopy);
  EXPECT_EQ(empty.size(), 0u);
  try {
    MappedFile missing(m.path("missing.bin"), FileMemory::kHugePageCopy);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.bin"), std::string::npos) << e.what();
  }
}

void expect_same_tensors(const ModelWeights& a, const ModelWeights& b) {
  ASSERT_EQ(a.store->tensors().size(), b.store->tensors().size());
  for (const auto& [name, t] : a.store->tensors()) {
    const Tensor& u = b.store->get(name);
    ASSERT_EQ(t.nbytes, u.nbytes) << name;
    EXPECT_NE(t.data, u.data) << name;
    EXPECT_EQ(std::memcmp(t.data, u.data, t.nbytes), 0) << name;
  }
}

TEST(Loader, NoMmapBindsCopiesWithTheSameBytes) {
  expect_same_tensors(*load_model(kCheckpoint), *load_model(kCheckpoint, FileMemory::kHugePageCopy));
  const std::string gguf = std::string(DSV4_TEST_DATA_DIR) + "/gguf/tiny-a.gguf";
  expect_same_tensors(*load_model(gguf), *load_model(gguf, FileMemory::kHugePageCopy));
}

TEST(Loader, TruncatedShard) {
  TempModel m;
  std::string b = m.read(kShard2);
  m.write(kShard2, b.substr(0, b.size() - 100));
  expect_error(m.dir.string(), {kShard2, "exceed"});
}

TEST(Loader, TruncatedInsideHeader) {
  TempModel m;
  m.write(kShard1, m.read(kShard1).substr(0, 50));
  expect_error(m.dir.string(), {kShard1, "truncated"});
}

TEST(Loader, EmptyFile) {
  TempModel m;
  m.write(kShard1, "");
  expect_error(m.dir.string(), {kShard1, "truncated"});
}

TEST(Loader, OutOfRangeOffsets) {
  TempModel m;
  auto h = m.header(kShard1);
  std::string name = tensor_in(h, "embed");
  ASSERT_FALSE(name.empty());
  h[name]["data_offsets"][1] = h[name]["data_offsets"][1].get<uint64_t>() + (1ull << 40);
  m.set_header(kShard1, h);
  expect_error(m.dir.string(), {kShard1, name});
}

TEST(Loader, OverlappingOffsets) {
  TempModel m;
  auto h = m.header(kShard1);
  // Move one tensor's range onto another tensor of the same byte size.
  std::string a, b;
  for (auto it = h.begin(); it != h.end() && b.empty(); ++it) {
    if (it.key() == "__metadata__") continue;
    for (auto jt = std::next(it); jt != h.end(); ++jt) {
      if (jt.key() == "__metadata__") continue;
      auto sa = it.value()["data_offsets"][1].get<uint64_t>() - it.value()["data_offsets"][0].get<uint64_t>();
      auto sb = jt.value()["data_offsets"][1].get<uint64_t>() - jt.value()["data_offsets"][0].get<uint64_t>();
      if (sa == sb && sa > 0) {
        a = it.key();
        b = jt.key();
        break;
      }
    }
  }
  ASSERT_FALSE(b.empty());
  h[b]["data_offsets"] = h[a]["data_offsets"];
  m.set_header(kShard1, h);
  expect_error(m.dir.string(), {kShard1, "overlapping"});
}

TEST(Loader, HeaderNotJson) {
  TempModel m;
  std::string b = m.read(kShard1);
  b[8] = '#';
  m.write(kShard1, b);
  expect_error(m.dir.string(), {kShard1, "JSON"});
}

TEST(Loader, MissingTensor) {
  TempModel m;
  auto h = m.header(kShard2);
  std::string name = tensor_in(h, "layers.");
  ASSERT_FALSE(name.empty());
  h.erase(name);
  m.set_header(kShard2, h);
  expect_error(m.dir.string(), {name});
}

TEST(Loader, WrongDtype) {
  TempModel m;
  auto h = m.header(kShard1);
  std::string name = "embed.weight";
  if (!h.contains(name)) {
    h = m.header(kShard2);
    ASSERT_TRUE(h.contains(name));
    h[name]["dtype"] = "F16";
    m.set_header(kShard2, h);
    expect_error(m.dir.string(), {name, "dtype"});
    return;
  }
  h[name]["dtype"] = "F16";
  m.set_header(kShard1, h);
  expect_error(m.dir.string(), {name, "dtype"});
}

TEST(Loader, WrongShape) {
  TempModel m;
  for (const auto& f : {kShard1, kShard2}) {
    auto h = m.header(f);
    std::string name = tensor_in(h, "layers.0.attn.wq_a.weight");
    if (name.empty()) continue;
    auto shape = h[name]["shape"];
    h[name]["shape"] = {shape[1], shape[0]};  // same byte size, transposed
    m.set_header(f, h);
    expect_error(m.dir.string(), {name, "shape"});
    return;
  }
  FAIL() << "tensor not found";
}

TEST(Loader, ExtraTensor) {
  TempModel m;
  auto h = m.header(kShard1);
  std::string name = tensor_in(h, "layers.");
  h["layers.99.bogus"] = h[name];
  h["layers.99.bogus"]["data_offsets"] = {0, 0};
  h["layers.99.bogus"]["shape"] = {0};
  m.set_header(kShard1, h);
  expect_error(m.dir.string(), {"layers.99.bogus"});
}

TEST(Loader, BadConfigValues) {
  struct Case {
    const char* field;
    nlohmann::json value;
  };
  const Case cases[] = {
      {"hidden_size", -4}, {"num_attention_heads", "four"}, {"compress_ratios", nlohmann::json::array({0, 4})},
      {"qk_rope_head_dim", 63}, {"o_groups", 3}, {"num_experts_per_tok", 99}, {"index_head_dim", 96},
  };
  for (const auto& c : cases) {
    TempModel m;
    auto cfg = nlohmann::json::parse(m.read("config.json"));
    cfg[c.field] = c.value;
    m.write("config.json", cfg.dump());
    SCOPED_TRACE(c.field);
    expect_error(m.dir.string(), {"config.json", c.field});
  }
}

TEST(Loader, ConfigNotJson) {
  TempModel m;
  m.write("config.json", "{\"hidden_size\": ");
  expect_error(m.dir.string(), {"config.json", "JSON"});
}

TEST(Loader, ConfigMissingField) {
  TempModel m;
  auto cfg = nlohmann::json::parse(m.read("config.json"));
  cfg.erase("vocab_size");
  m.write("config.json", cfg.dump());
  expect_error(m.dir.string(), {"config.json", "vocab_size"});
}

TEST(Loader, IndexNamesMissingShard) {
  TempModel m;
  fs::remove(m.path(kShard2));
  expect_error(m.dir.string(), {kShard2});
}

TEST(Loader, HashTableOutOfRange) {
  TempModel m;
  for (const auto& f : {kShard1, kShard2}) {
    auto h = m.header(f);
    if (!h.contains("layers.0.ffn.gate.tid2eid")) continue;
    std::string b = m.read(f);
    uint64_t n;
    std::memcpy(&n, b.data(), 8);
    uint64_t off = 8 + n + h["layers.0.ffn.gate.tid2eid"]["data_offsets"][0].get<uint64_t>();
    int64_t bad = 1000;
    std::memcpy(&b[off], &bad, 8);
    m.write(f, b);
    expect_error(m.dir.string(), {"tid2eid", "1000"});
    return;
  }
  FAIL() << "tid2eid not found";
}

TEST(Safetensors, WriteThenReadRoundTrip) {
  fs::path p = fs::temp_directory_path() / ("dsv4_st_" + std::to_string(::getpid()) + ".safetensors");
  std::vector<float> v = {1.5f, -2.f, 3.25f, 0.f, 7.f, 8.f};
  std::vector<int64_t> ids = {3, -1, 5};
  write_safetensors(p.string(), {TensorData::f32("x", {2, 3}, v.data()), TensorData::i64("ids", {3}, ids.data())});
  TensorStore s = TensorStore::open_file(p.string());
  EXPECT_EQ(s.read_f32("x"), v);
  EXPECT_EQ(s.read_i64("ids"), ids);
  EXPECT_EQ(s.get("x").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_THROW(s.read_i64("x"), Error);
  EXPECT_THROW(s.get("nope"), Error);
  fs::remove(p);
}
