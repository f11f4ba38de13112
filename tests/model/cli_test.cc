// The `dsv4 logits` and `dsv4 block` commands end to end (through the executable).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "runner.h"

namespace fs = std::filesystem;
using namespace dsv4;
using namespace dsv4::test;

namespace {

struct CmdResult {
  int rc;
  std::string err;
};

fs::path tmp_dir() {
  static fs::path d = [] {
    fs::path p = fs::temp_directory_path() / ("dsv4_fwd_cli_" + std::to_string(::getpid()));
    fs::create_directories(p);
    return p;
  }();
  return d;
}

CmdResult run_dsv4(const std::string& args) {
  const std::string err = (tmp_dir() / "stderr.txt").string();
  const std::string cmd = std::string(DSV4_BIN) + " " + args + " 2> " + err + " > /dev/null";
  int st = std::system(cmd.c_str());
  CmdResult r;
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream f(err);
  r.err.assign(std::istreambuf_iterator<char>(f), {});
  return r;
}

std::string model_arg() { return "--model " + kTinyA + "/checkpoint"; }

std::string ids(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

}  // namespace

TEST(LogitsCli, RejectsBadTokenIds) {
  const std::string out = (tmp_dir() / "bad.safetensors").string();
  for (const std::string& tok : {"-1", "512", "1,x,3", "1.5", "''", "1,,2"}) {
    CmdResult r = run_dsv4("logits " + model_arg() + " --tokens " + tok + " --out " + out);
    EXPECT_EQ(r.rc, 1) << tok << ": " << r.err;
    EXPECT_NE(r.err.find("token"), std::string::npos) << tok << ": " << r.err;
  }
  const fs::path js = tmp_dir() / "floats.json";
  std::ofstream(js) << "[1, 2.5]";
  CmdResult r = run_dsv4("logits " + model_arg() + " --tokens @" + js.string() + " --out " + out);
  EXPECT_EQ(r.rc, 1) << r.err;
  std::ofstream(js) << "[]";
  r = run_dsv4("logits " + model_arg() + " --tokens @" + js.string() + " --out " + out);
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_FALSE(fs::exists(out));
}

TEST(LogitsCli, PrefillDecodeAndMtpMatchGolden) {
  auto tokens = seq_tokens("seq0");
  const int64_t N = static_cast<int64_t>(tokens.size()), V = tiny_model()->config.vocab_size;
  const fs::path js = tmp_dir() / "seq0.json";
  std::ofstream(js) << "[" << ids(tokens) << "]";
  const std::string out = (tmp_dir() / "out.safetensors").string();
  // --all + --mtp, precise.
  CmdResult r = run_dsv4("logits " + model_arg() + " --tokens @" + js.string() + " --out " + out + " --numerics precise --all --mtp");
  ASSERT_EQ(r.rc, 0) << r.err;
  {
    TensorStore s = TensorStore::open_file(out);
    EXPECT_EQ(s.get("logits").shape, (std::vector<int64_t>{N, V}));
    EXPECT_LE(diff(s.read_f32("logits"), golden("precise/seq0_prefill.safetensors").read_f32("logits_all")).max_abs, 1e-3);
    EXPECT_EQ(s.get("mtp_logits").shape, (std::vector<int64_t>{N - 1, V}));
    auto m = s.read_f32("mtp_logits");
    std::vector<float> last(m.end() - V, m.end());
    EXPECT_LE(diff(last, golden("precise/seq0_mtp.safetensors").read_f32("logits_last")).max_abs, 1e-3);
  }
  // Last position only (default), inline ids.
  r = run_dsv4("logits " + model_arg() + " --tokens " + ids(tokens) + " --out " + out + " --numerics precise");
  ASSERT_EQ(r.rc, 0) << r.err;
  {
    TensorStore s = TensorStore::open_file(out);
    EXPECT_EQ(s.get("logits").shape, (std::vector<int64_t>{1, V}));
    EXPECT_LE(diff(s.read_f32("logits"), golden("precise/seq0_prefill.safetensors").read_f32("logits_last")).max_abs, 1e-3);
  }
  // --prefill 17: N-K+1 rows.
  r = run_dsv4("logits " + model_arg() + " --tokens @" + js.string() + " --out " + out + " --numerics precise --prefill 17");
  ASSERT_EQ(r.rc, 0) << r.err;
  {
    TensorStore s = TensorStore::open_file(out);
    EXPECT_EQ(s.get("logits").shape, (std::vector<int64_t>{N - 17 + 1, V}));
    EXPECT_LE(diff(s.read_f32("logits"), golden("precise/seq0_decode_k17.safetensors").read_f32("logits")).max_abs, 1e-3);
  }
  r = run_dsv4("logits " + model_arg() + " --tokens @" + js.string() + " --out " + out + " --prefill 0");
  EXPECT_EQ(r.rc, 1) << r.err;
}

TEST(BlockCli, TeacherForcedLayerAndMtp) {
  auto w = tiny_model();
  const ModelConfig& c = w->config;
  auto tokens = seq_tokens("seq1");
  const int64_t S = static_cast<int64_t>(tokens.size()), hc = c.hc_mult, D = c.dim;
  const TensorStore& g = golden("reference/debug_seq1.safetensors");
  const std::string in = (tmp_dir() / "streams.safetensors").string();
  const std::string out = (tmp_dir() / "block.safetensors").string();
  auto X = g.read_f32("layers.1.out");
  write_safetensors(in, {TensorData::f32("streams", {S, hc, D}, X.data())});
  CmdResult r = run_dsv4("block " + model_arg() + " --layer 2 --streams " + in + " --tokens " + ids(tokens) + " --out " + out);
  ASSERT_EQ(r.rc, 0) << r.err;
  {
    TensorStore s = TensorStore::open_file(out);
    for (const char* n : {"attn.out", "ffn.out", "out"})
      EXPECT_LE(diff(s.read_f32(n), g.read_f32(std::string("layers.2.") + n)).rel_fro, 1e-2) << n;
    EXPECT_EQ(s.get("out").shape, (std::vector<int64_t>{S, hc, D}));
  }
  // MTP block: final streams without the last row, next tokens.
  auto F = g.read_f32("layers.2.out");
  F.resize(static_cast<size_t>((S - 1) * hc * D));
  write_safetensors(in, {TensorData::f32("a", {S - 1, hc, D}, F.data()), TensorData::f32("b", {1}, F.data())});
  std::vector<int64_t> next(tokens.begin() + 1, tokens.end());
  r = run_dsv4("block " + model_arg() + " --layer mtp --streams " + in + " --tokens " + ids(next) + " --out " + out);
  EXPECT_EQ(r.rc, 1) << "two tensors without --streams-tensor";
  r = run_dsv4("block " + model_arg() + " --layer mtp --streams " + in + " --streams-tensor a --tokens " + ids(next) +
           " --out " + out);
  ASSERT_EQ(r.rc, 0) << r.err;
  {
    TensorStore s = TensorStore::open_file(out);
    EXPECT_LE(diff(s.read_f32("out"), g.read_f32("mtp.out_streams")).rel_fro, 1e-2);
  }
  r = run_dsv4("block " + model_arg() + " --layer 3x --streams " + in + " --streams-tensor a --tokens 1 --out " + out);
  EXPECT_EQ(r.rc, 1);
}
