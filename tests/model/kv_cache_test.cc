// Compact KV cache (spec 4.2): in reference mode the FP8/FP4 storage is lossless (logits
// bit-identical to FP32 storage for prefill, decode and truncate), and the byte accounting of
// `dsv4 kv` (kv_bytes_at) matches both the state's real allocations and the spec 4.4 figures.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "model/config.h"
#include "ops/formats.h"
#include "runner.h"

using namespace dsv4;
using namespace dsv4::test;

namespace {

// Prefill K tokens, then decode one token at a time; logits of every position.
std::vector<float> run_logits(KvStorage storage, const std::vector<int64_t>& tokens, int64_t K) {
  auto w = tiny_model();
  const ModelConfig& c = w->config;
  const int64_t N = static_cast<int64_t>(tokens.size()), V = c.vocab_size;
  SequenceState st(c, Numerics::kReference, 0, storage);
  std::vector<float> logits(static_cast<size_t>(N * V));
  ForwardOutput fo;
  fo.all_logits = true;
  fo.logits = logits.data();
  forward(*w, st, tokens.data(), K, fo);
  for (int64_t p = K; p < N; ++p) {
    fo.logits = logits.data() + p * V;
    forward(*w, st, tokens.data() + p, 1, fo);
  }
  return logits;
}

void expect_bits(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size());
  size_t bad = 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], 4) != 0) ++bad;
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " logits differ";
}

}  // namespace

TEST(CompactKv, FormatsAndSizes) {
  EXPECT_EQ(kv_entry_bytes(KvFormat::kMainFp8, 512, 64), 584);  // 448 + 128 + 7 + 1 pad
  EXPECT_EQ(kv_entry_bytes(KvFormat::kIdxFp4, 128, 0), 68);     // 64 + 4
  EXPECT_EQ(kv_entry_bytes(KvFormat::kF32, 512, 64), 2048);
  // Round trip of values on the grid; a value off the grid is refused.
  std::vector<float> x(512);
  for (int i = 0; i < 448; ++i) x[i] = e4m3_to_f32(static_cast<uint8_t>((i * 37) % 126)) * (i < 64 ? 0.25f : 8.0f);
  for (int i = 448; i < 512; ++i) x[i] = round_bf16(0.001f * (i - 480));
  std::vector<uint8_t> row(584);
  std::vector<float> back(512);
  kv_encode(KvFormat::kMainFp8, 512, 64, x.data(), row.data());
  kv_decode(KvFormat::kMainFp8, 512, 64, row.data(), back.data());
  EXPECT_EQ(std::memcmp(x.data(), back.data(), 512 * 4), 0);
  x[3] = 1.0f + 1.0f / 1024;
  EXPECT_THROW(kv_encode(KvFormat::kMainFp8, 512, 64, x.data(), row.data()), Error);
  std::vector<float> k(128);
  for (int i = 0; i < 128; ++i) k[i] = e2m1_to_f32(static_cast<uint8_t>(i % 16)) * (i < 32 ? 0.5f : 4.0f);
  std::vector<uint8_t> krow(68);
  std::vector<float> kback(128);
  kv_encode(KvFormat::kIdxFp4, 128, 0, k.data(), krow.data());
  kv_decode(KvFormat::kIdxFp4, 128, 0, krow.data(), kback.data());
  EXPECT_EQ(std::memcmp(k.data(), kback.data(), 128 * 4), 0);
}

TEST(CompactKv, BitIdenticalToFp32StorageInReferenceMode) {
  for (const char* seq : {"seq1", "seq2"}) {
    auto tokens = seq_tokens(seq);
    const int64_t N = static_cast<int64_t>(tokens.size());
    for (int64_t K : {N, int64_t{20}}) {  // full prefill; prefill 20 + decode
      auto f32 = run_logits(KvStorage::kF32, tokens, K);
      auto compact = run_logits(KvStorage::kAuto, tokens, K);
      expect_bits(compact, f32, std::string(seq) + " prefill " + std::to_string(K));
    }
  }
}

TEST(CompactKv, CompactRowsAreSmaller) {
  auto w = tiny_model();
  const ModelConfig& c = w->config;
  SequenceState ref(c, Numerics::kReference), pre(c, Numerics::kPrecise);
  EXPECT_EQ(ref.layers[1].window_format, KvFormat::kMainFp8);
  EXPECT_EQ(ref.layers[1].indexer.entries.format, KvFormat::kIdxFp4);
  EXPECT_EQ(pre.layers[1].window_format, KvFormat::kF32);
  EXPECT_LT(ref.layers[1].window_row_bytes * 2, pre.layers[1].window_row_bytes);
}

TEST(CompactKv, StateBytesMatchKvBytesAt) {
  auto w = tiny_model();
  const ModelConfig& c = w->config;
  auto tokens = seq_tokens("seq1");
  const int64_t N = static_cast<int64_t>(tokens.size());
  for (Numerics nm : {Numerics::kReference, Numerics::kPrecise}) {
    SequenceState st(c, nm);
    ForwardOutput fo;
    forward(*w, st, tokens.data(), N, fo);
    const KvBytes a = st.kv_bytes(), b = kv_bytes_at(c, nm, N);
    EXPECT_EQ(a.window, b.window);
    EXPECT_EQ(a.csa_entries, b.csa_entries);
    EXPECT_EQ(a.indexer_keys, b.indexer_keys);
    EXPECT_EQ(a.hca_entries, b.hca_entries);
    EXPECT_EQ(a.compressor_state, b.compressor_state);
    EXPECT_GT(a.csa_entries, 0);
  }
}

// Hand-computed from spec 4.3 / 4.4 (584 B main entries, 68 B indexer keys, chunks of 1024
// entries divide 1M / 4 and 1M / 128 exactly; the MTP block adds one window).
TEST(KvAccounting, FlashAndProAt1M) {
  const int64_t N = 1048576;
  const KvBytes f = kv_bytes_at(official_config("flash"), Numerics::kReference, N);
  EXPECT_EQ(f.window, 44 * 128 * 584);
  EXPECT_EQ(f.csa_entries, int64_t{21} * 262144 * 584);
  EXPECT_EQ(f.indexer_keys, int64_t{21} * 262144 * 68);
  EXPECT_EQ(f.hca_entries, int64_t{20} * 8192 * 584);
  EXPECT_EQ(f.compressor_state, 21 * (2 * 8 * 1024 * 4 + 2 * 8 * 256 * 4) + 20 * (2 * 128 * 512 * 4));
  const int64_t f_cache = f.total() - f.compressor_state;
  EXPECT_EQ(f_cache, 3688247296);  // 3.688 GB
  EXPECT_LE(f_cache, 3690000000);
  EXPECT_EQ(v32_kv_bytes(N), 50402951168);  // 50.40 GB
  EXPECT_GE(static_cast<double>(v32_kv_bytes(N)) / static_cast<double>(f_cache), 13.665);
  EXPECT_NEAR(static_cast<double>(v32_kv_bytes(N)) / static_cast<double>(f.total()), 13.62, 0.01);
  const KvBytes p = kv_bytes_at(official_config("pro"), Numerics::kReference, N);
  EXPECT_EQ(p.window, 62 * 128 * 584);
  EXPECT_EQ(p.csa_entries, int64_t{30} * 262144 * 584);
  EXPECT_EQ(p.indexer_keys, int64_t{30} * 262144 * 68);
  EXPECT_EQ(p.hca_entries, int64_t{31} * 8192 * 584);
  EXPECT_EQ(p.total() - p.compressor_state, 5280479232);  // 5.280 GB
  EXPECT_NEAR(static_cast<double>(v32_kv_bytes(N)) / static_cast<double>(p.total() - p.compressor_state), 9.55, 0.005);
  // Grows with the context only through the compressed caches; chunked (no per-token steps).
  const KvBytes f0 = kv_bytes_at(official_config("flash"), Numerics::kReference, 0);
  EXPECT_EQ(f0.csa_entries + f0.indexer_keys + f0.hca_entries, 0);
  EXPECT_EQ(f0.window, f.window);
  EXPECT_EQ(kv_bytes_at(official_config("flash"), Numerics::kReference, 4).csa_entries, 21 * 1024 * 584);
}

TEST(KvCli, JsonFields) {
  const std::string out = "/tmp/dsv4_kv_cli_" + std::to_string(::getpid()) + ".json";
  const std::string cmd = std::string(DSV4_BIN) + " kv --preset flash --context 1M --json > " + out;
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream f(out);
  auto j = nlohmann::json::parse(f);
  std::remove(out.c_str());
  for (const char* k : {"context", "total_bytes", "bytes_per_token", "by_type", "v32_total_bytes", "ratio_vs_v32"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["context"].get<int64_t>(), 1048576);
  EXPECT_EQ(j["v32_total_bytes"].get<int64_t>(), 50402951168);
  for (const char* k : {"window", "csa_entries", "indexer_keys", "hca_entries", "compressor_state"})
    EXPECT_TRUE(j["by_type"].contains(k)) << k;
  EXPECT_EQ(j["cache_bytes_excl_compressor_state"].get<int64_t>(), 3688247296);
  const std::string cmd2 = std::string(DSV4_BIN) + " kv --model " + kTinyA + "/checkpoint --context 100 --json > " + out;
  ASSERT_EQ(std::system(cmd2.c_str()), 0);
  std::remove(out.c_str());
}

TEST(BenchCli, JsonFields) {
  const std::string out = "/tmp/dsv4_bench_cli_" + std::to_string(::getpid()) + ".json";
  const std::string cmd = std::string(DSV4_BIN) + " bench -m " + kTinyA +
                          "/checkpoint -t 1 --prefill 8 --decode 2 --max-context 4096 --long-steps 1"
                          " --bandwidth-mib 64 --json > " + out;
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream f(out);
  auto j = nlohmann::json::parse(f);
  std::remove(out.c_str());
  for (const char* k : {"threads", "bandwidth_gbs", "decode_tok_s", "decode_bytes_per_token", "decode_bw_fraction",
                        "prefill_tokens", "prefill_tok_s", "prefill_gflops", "gemm_peak_gflops",
                        "prefill_peak_fraction", "long_context", "resident_bytes", "kv_bytes"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["threads"].get<int>(), 1);
  EXPECT_EQ(j["prefill_tokens"].get<int64_t>(), 8);
  ASSERT_TRUE(j["long_context"].is_array());
  for (const auto& l : j["long_context"]) {
    EXPECT_TRUE(l.contains("context"));
    EXPECT_TRUE(l.contains("decode_tok_s"));
    EXPECT_EQ(l["decode_bytes_per_token"].get<int64_t>(),
              l["decode_weight_bytes_per_token"].get<int64_t>() + l["decode_kv_bytes_per_token"].get<int64_t>());
  }
  // Both matmul yardsticks (BF16 is 0 on CPUs without a BF16 dot instruction).
  EXPECT_GT(j["gemm_peak_gflops"]["fp32"].get<double>(), 0.0);
  EXPECT_GE(j["gemm_peak_gflops"]["bf16"].get<double>(), 0.0);
  // Bytes read per decoded token, split: weights touched + KV read.
  EXPECT_EQ(j["decode_bytes_per_token"].get<int64_t>(),
            j["decode_weight_bytes_per_token"].get<int64_t>() + j["decode_kv_bytes_per_token"].get<int64_t>());
  EXPECT_GT(j["decode_kv_bytes_per_token"].get<int64_t>(), 0);
}
