// GGUF reader: the llama.cpp-layout fixture parses; truncated, corrupted and malformed files
// (headers, metadata, tensor infos, data ranges, shapes, types, split sets) give one Error
// naming the file and the key / tensor at fault, never a crash (also run under ASan/UBSan).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "base/error.h"
#include "base/file.h"
#include "model/gguf.h"
#include "model/gguf_model.h"
#include "model/weights.h"

namespace fs = std::filesystem;
using namespace dsv4;

namespace {

const std::string kGguf = std::string(DSV4_TEST_DATA_DIR) + "/gguf/tiny-a.gguf";

std::string fixture_bytes() {
  static const std::string b = read_file(kGguf);
  return b;
}

// Parses a copy of exactly `size` bytes (so that ASan sees any read past the end).
void parse_copy(const std::string& bytes, size_t size) {
  std::vector<uint8_t> buf(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(size));
  GgufFile::parse(buf.data(), buf.size(), "mem.gguf");
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// The fixture's metadata and tensors, for writing modified copies.
struct Parts {
  std::vector<std::pair<std::string, GgufValue>> kv;
  std::vector<GgufWriteTensor> tensors;
};
Parts fixture_parts() {
  GgufFile f = GgufFile::open(kGguf);
  Parts p;
  for (const auto& [k, v] : f.metadata()) p.kv.push_back({k, v});
  for (const auto& [name, t] : f.tensors()) {
    GgufWriteTensor w;
    w.name = name;
    w.type = t.type;
    w.ne = t.ne;
    w.bytes.assign(t.data, t.data + t.nbytes);
    p.tensors.push_back(std::move(w));
  }
  return p;
}

struct TempDir {
  fs::path dir = fs::temp_directory_path() / ("dsv4_gguf_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(dir); }
  ~TempDir() { fs::remove_all(dir); }
  std::string write(const std::string& name, const std::string& bytes) const {
    const std::string p = (dir / name).string();
    std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return p;
  }
};

GgufWriteTensor* tensor(Parts& p, const std::string& name) {
  for (auto& t : p.tensors)
    if (t.name == name) return &t;
  return nullptr;
}

std::string load_error(const Parts& p) {
  TempDir d;
  const std::string path = d.write("m.gguf", serialize_gguf(p.kv, p.tensors));
  return error_of([&] { load_gguf_model(path); });
}

TEST(GgufReader, FixtureParses) {
  GgufFile f = GgufFile::open(kGguf);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32);
  EXPECT_EQ(f.get_string("general.architecture"), "deepseek4");
  EXPECT_EQ(f.get_int("deepseek4.block_count"), 3);
  EXPECT_EQ(f.get_int_array("deepseek4.attention.compress_ratios"), (std::vector<int64_t>{0, 4, 16, 0}));
  const GgufTensor* t = f.find_tensor("blk.0.ffn_gate_exps.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->type, GgmlType::MXFP4);
  EXPECT_EQ(t->ne, (std::vector<int64_t>{256, 128, 6}));
  EXPECT_EQ(t->nbytes, 256 / 32 * 17 * 128 * 6);
  EXPECT_EQ(f.find_tensor("blk.0.ffn_gate_tid2eid.weight")->type, GgmlType::I32);
  EXPECT_EQ(f.get_int("deepseek4.nosuchkey", 7), 7);
  EXPECT_NE(error_of([&] { f.get_int("deepseek4.nosuchkey"); }).find("'deepseek4.nosuchkey' is missing"), std::string::npos);
  EXPECT_NE(error_of([&] { f.get_int("general.architecture"); }).find("expected an integer"), std::string::npos);
}

TEST(GgufReader, EveryTruncationIsAnError) {
  const std::string b = fixture_bytes();
  GgufFile f = GgufFile::parse(reinterpret_cast<const uint8_t*>(b.data()), b.size(), "full");
  size_t data_end = 0;  // end of the last tensor's bytes
  for (const auto& [n, t] : f.tensors())
    data_end = std::max(data_end, static_cast<size_t>(t.data - reinterpret_cast<const uint8_t*>(b.data())) + static_cast<size_t>(t.nbytes));
  // Every prefix of the header (byte by byte), then prefixes through the data in coarse steps.
  size_t header_end = b.size();  // start of the data section
  for (const auto& [n, t] : f.tensors())
    header_end = std::min(header_end, static_cast<size_t>(t.data - reinterpret_cast<const uint8_t*>(b.data())));
  int errors = 0;
  for (size_t n = 0; n < data_end; n += (n < header_end ? 1 : 65537)) {
    const std::string e = error_of([&] { parse_copy(b, n); });
    EXPECT_FALSE(e.empty()) << "prefix of " << n << " bytes parsed";
    EXPECT_EQ(e.find('\n'), std::string::npos);
    errors += !e.empty();
  }
  EXPECT_GT(errors, 1000);
  EXPECT_TRUE(error_of([&] { parse_copy(b, data_end); }).empty());
}

TEST(GgufReader, RandomHeaderCorruptionNeverCrashes) {
  const std::string b = fixture_bytes();
  GgufFile f = GgufFile::parse(reinterpret_cast<const uint8_t*>(b.data()), b.size(), "full");
  size_t header_end = b.size();
  for (const auto& [n, t] : f.tensors()) header_end = std::min(header_end, static_cast<size_t>(t.data - reinterpret_cast<const uint8_t*>(b.data())));
  std::mt19937 rng(1234);
  int rejected = 0;
  for (int it = 0; it < 3000; ++it) {
    std::string m = b.substr(0, header_end + 64 * 1024);  // header + some data keeps it fast
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      const size_t pos = rng() % header_end;
      const int kind = static_cast<int>(rng() % 3);
      m[pos] = kind == 0 ? static_cast<char>(rng()) : kind == 1 ? static_cast<char>(0xFF) : static_cast<char>(m[pos] ^ (1 << (rng() % 8)));
    }
    const std::string e = error_of([&] { parse_copy(m, m.size()); });
    rejected += !e.empty();
  }
  EXPECT_GT(rejected, 1000);  // most corruptions are caught at parse time (the rest change values)
}

TEST(GgufReader, MalformedHeadersNameTheProblem) {
  auto bytes_of = [](const std::vector<std::pair<std::string, GgufValue>>& kv, const std::vector<GgufWriteTensor>& t) {
    return serialize_gguf(kv, t);
  };
  GgufWriteTensor t{"a.weight", GgmlType::F32, {4, 2}, std::vector<uint8_t>(32, 0)};
  std::string ok = bytes_of({{"general.architecture", gguf_str("x")}}, {t});
  EXPECT_TRUE(error_of([&] { parse_copy(ok, ok.size()); }).empty());

  std::string m = ok;
  m[0] = 'X';
  EXPECT_NE(error_of([&] { parse_copy(m, m.size()); }).find("bad magic"), std::string::npos);
  m = ok;
  m[4] = 1;
  EXPECT_NE(error_of([&] { parse_copy(m, m.size()); }).find("unsupported GGUF version 1"), std::string::npos);
  m = ok;
  m[4] = 0, m[7] = 3;  // version 3 written big-endian
  EXPECT_NE(error_of([&] { parse_copy(m, m.size()); }).find("big-endian"), std::string::npos);
  m = ok;
  m[8 + 7] = 0x10;  // huge tensor count
  EXPECT_NE(error_of([&] { parse_copy(m, m.size()); }).find("tensor count"), std::string::npos);

  GgufWriteTensor bad_type = t;
  bad_type.type = static_cast<GgmlType>(77);
  std::string s = bytes_of({}, {bad_type});
  EXPECT_NE(error_of([&] { parse_copy(s, s.size()); }).find("tensor a.weight has unknown ggml type 77"), std::string::npos);

  GgufWriteTensor ragged{"q.weight", GgmlType::Q8_0, {40, 1}, std::vector<uint8_t>(34, 0)};
  s = bytes_of({}, {ragged});
  EXPECT_NE(error_of([&] { parse_copy(s, s.size()); }).find("tensor q.weight of type q8_0 has a row of 40 elements"), std::string::npos);

  GgufWriteTensor zero_dim{"z.weight", GgmlType::F32, {4, 0}, {}};
  s = bytes_of({}, {zero_dim});
  EXPECT_NE(error_of([&] { parse_copy(s, s.size()); }).find("tensor z.weight has dimension 1 = 0"), std::string::npos);

  s = bytes_of({{"k", gguf_u32(1)}, {"k", gguf_u32(2)}}, {});
  EXPECT_NE(error_of([&] { parse_copy(s, s.size()); }).find("duplicate metadata key 'k'"), std::string::npos);

  s = bytes_of({}, {t, t});
  EXPECT_NE(error_of([&] { parse_copy(s, s.size()); }).find("duplicate tensor a.weight"), std::string::npos);

  s = bytes_of({{"general.alignment", gguf_u32(24)}}, {});
  EXPECT_NE(error_of([&] { parse_copy(s, s.size()); }).find("not a power of two"), std::string::npos);

  // A tensor whose data runs past the end of the file.
  s = bytes_of({}, {t});
  EXPECT_NE(error_of([&] { parse_copy(s, s.size() - 8); }).find("tensor a.weight"), std::string::npos);

  // A misaligned data offset: patch the offset field (the last 8 bytes of the tensor info).
  s = bytes_of({}, {t, GgufWriteTensor{"b.weight", GgmlType::F32, {8}, std::vector<uint8_t>(32, 0)}});
  const size_t info_b = s.find("b.weight");
  ASSERT_NE(info_b, std::string::npos);
  const size_t off_pos = info_b + 8 + 4 + 8 + 4;  // name, n_dims, ne[0], type
  s[off_pos] = 4;
  EXPECT_NE(error_of([&] { parse_copy(s, s.size()); }).find("tensor b.weight has data offset 4"), std::string::npos);
  s[off_pos] = 0;  // both at offset 0: overlap
  EXPECT_NE(error_of([&] { parse_copy(s, s.size()); }).find("overlap"), std::string::npos);
}

TEST(GgufModelErrors, MissingWrongShapeUnsupportedExtra) {
  {
    Parts p = fixture_parts();
    p.tensors.erase(std::remove_if(p.tensors.begin(), p.tensors.end(), [](const GgufWriteTensor& t) { return t.name == "blk.1.attn_q_a.weight"; }),
                    p.tensors.end());
    EXPECT_NE(load_error(p).find("missing tensor blk.1.attn_q_a.weight (the official layers.1.attn.wq_a.weight)"), std::string::npos);
  }
  {
    Parts p = fixture_parts();
    GgufWriteTensor* t = tensor(p, "blk.2.attn_kv.weight");
    std::swap(t->ne[0], t->ne[1]);
    EXPECT_NE(load_error(p).find("tensor blk.2.attn_kv.weight has shape [192, 256], expected [256, 192]"), std::string::npos) << load_error(p);
  }
  {
    // Routed experts in a type this build cannot decode: an error at load naming tensor and type.
    Parts p = fixture_parts();
    GgufWriteTensor* t = tensor(p, "blk.0.ffn_gate_exps.weight");
    t->type = GgmlType::IQ1_M;
    t->bytes.assign(static_cast<size_t>(256 / 256 * 56 * 128 * 6), 0);
    const std::string e = load_error(p);
    EXPECT_NE(e.find("tensor blk.0.ffn_gate_exps.weight has type iq1_m"), std::string::npos) << e;
  }
  for (const auto& [type, block_bytes] : {std::pair{GgmlType::IQ2_XS, 74}, {GgmlType::IQ2_S, 82}, {GgmlType::IQ3_XXS, 98}, {GgmlType::IQ3_S, 110}}) {
    // The IQ2 / IQ3 types dsv4 decodes are accepted at load.
    Parts p = fixture_parts();
    GgufWriteTensor* t = tensor(p, "blk.0.ffn_gate_exps.weight");
    t->type = type;
    t->bytes.assign(static_cast<size_t>(256 / 256 * block_bytes * 128 * 6), 0);
    EXPECT_EQ(load_error(p), "") << ggml_type_name(static_cast<uint32_t>(type));
  }
  {
    Parts p = fixture_parts();
    p.tensors.push_back(GgufWriteTensor{"blk.0.rope_freqs.weight", GgmlType::F32, {8}, std::vector<uint8_t>(32, 0)});
    EXPECT_NE(load_error(p).find("unexpected tensor blk.0.rope_freqs.weight"), std::string::npos);
  }
  {
    Parts p = fixture_parts();
    GgufWriteTensor* t = tensor(p, "blk.0.ffn_gate_tid2eid.weight");
    const int32_t bad = 6;
    std::memcpy(t->bytes.data() + 4 * 5, &bad, 4);
    EXPECT_NE(load_error(p).find("tensor blk.0.ffn_gate_tid2eid.weight holds expert id 6"), std::string::npos);
  }
  {
    Parts p = fixture_parts();
    for (auto& [k, v] : p.kv)
      if (k == "general.architecture") v = gguf_str("llama");
    EXPECT_NE(load_error(p).find("general.architecture is 'llama', expected 'deepseek4'"), std::string::npos);
  }
  {
    Parts p = fixture_parts();
    p.kv.erase(std::remove_if(p.kv.begin(), p.kv.end(), [](const auto& kv) { return kv.first == "deepseek4.expert_count"; }), p.kv.end());
    EXPECT_NE(load_error(p).find("metadata key 'deepseek4.expert_count' is missing"), std::string::npos);
  }
  {
    Parts p = fixture_parts();
    GgufWriteTensor* t = tensor(p, "blk.0.attn_norm.weight");
    const float not_bf16 = 1.0f + 0x1p-20f;
    std::memcpy(t->bytes.data(), &not_bf16, 4);
    EXPECT_NE(load_error(p).find("tensor blk.0.attn_norm.weight element 0"), std::string::npos);
  }
}

TEST(GgufSplit, TwoPartsLoadLikeOne) {
  Parts p = fixture_parts();
  TempDir d;
  const size_t half = p.tensors.size() / 2;
  std::vector<GgufWriteTensor> a(p.tensors.begin(), p.tensors.begin() + static_cast<std::ptrdiff_t>(half));
  std::vector<GgufWriteTensor> b(p.tensors.begin() + static_cast<std::ptrdiff_t>(half), p.tensors.end());
  auto kv1 = p.kv;
  kv1.push_back({"split.no", gguf_u32(0)});
  kv1.push_back({"split.count", gguf_u32(2)});
  kv1.push_back({"split.tensors.count", gguf_i32(static_cast<int64_t>(p.tensors.size()))});
  const std::string first = d.write("m-00001-of-00002.gguf", serialize_gguf(kv1, a));
  const std::string second_name = "m-00002-of-00002.gguf";
  EXPECT_NE(error_of([&] { load_model(first); }).find("split part " + (d.dir / second_name).string() + " is missing"), std::string::npos);
  d.write(second_name, serialize_gguf({{"split.no", gguf_u32(1)}, {"split.count", gguf_u32(2)}}, b));
  auto w = load_model(first);
  EXPECT_EQ(w->config.n_layers, 3);
  EXPECT_EQ(w->store->files().size(), 2u);
  auto whole = load_model(kGguf);
  EXPECT_EQ(w->store->tensors().size(), whole->store->tensors().size());
}

}  // namespace
