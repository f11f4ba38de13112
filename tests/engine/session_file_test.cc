// Session::save / load: a loaded session continues bit-identically to the original (logits of
// every following step, rewinds through the restored checkpoint), in both numerics modes, at a
// position past many compression boundaries; the model fingerprint tracks the model.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "base/error.h"
#include "base/file.h"
#include "session_file_common.h"

using namespace dsv4;
using namespace dsv4::test;

namespace {

class SessionFile : public testing::TestWithParam<Numerics> {};

TEST_P(SessionFile, LoadedSessionContinuesBitIdentically) {
  const Numerics nm = GetParam();
  const auto t = seq1();
  const uint64_t fp = model_fingerprint(*tiny_a());
  // Prompt of 60 (checkpoint), 40 generated: 25 CSA entries, 6 HCA entries, the window wrapped.
  auto orig = session_at(nm, 60, 100);
  const std::string bytes = orig->save(fp);
  Session loaded(tiny_a(), file_opts(nm));
  loaded.load(bytes, fp, "mem");
  EXPECT_EQ(loaded.tokens(), orig->tokens());
  ASSERT_FALSE(loaded.last_logits().empty());
  EXPECT_TRUE(bit_equal(loaded.last_logits(), orig->last_logits()));
  EXPECT_EQ(loaded.save(fp), bytes) << "save(load(x)) == x";
  for (size_t i = 100; i < t.size(); ++i) {
    auto a = orig->step(t[i]);
    auto b = loaded.step(t[i]);
    ASSERT_TRUE(bit_equal(a, b)) << "step at position " << i;
  }
}

TEST_P(SessionFile, RestoredCheckpointServesRewinds) {
  const Numerics nm = GetParam();
  const auto t = seq1();
  const uint64_t fp = model_fingerprint(*tiny_a());
  auto orig = session_at(nm, 60, 100);  // horizon 8: a rewind to 55 needs the checkpoint at 60
  Session loaded(tiny_a(), file_opts(nm));
  loaded.load(orig->save(fp), fp, "mem");
  EXPECT_EQ(loaded.truncate(55), 0) << "served by the checkpoint, no recomputation";
  Session fresh(tiny_a(), file_opts(nm));
  fresh.append(std::span<const int64_t>(t.data(), 55));
  for (size_t i = 55; i < 80; ++i) {
    auto a = fresh.step(t[i]);
    auto b = loaded.step(t[i]);
    ASSERT_TRUE(bit_equal(a, b)) << "step at position " << i;
  }
}

TEST_P(SessionFile, AfterRewindWithoutLogits) {
  // A truncate within the horizon leaves no logits: the file says so, and the next step works.
  const Numerics nm = GetParam();
  const auto t = seq1();
  const uint64_t fp = 42;
  auto orig = session_at(nm, 33, 70);
  orig->truncate(65);
  ASSERT_TRUE(orig->last_logits().empty());
  Session loaded(tiny_a(), file_opts(nm));
  loaded.load(orig->save(fp), fp, "mem");
  EXPECT_TRUE(loaded.last_logits().empty());
  EXPECT_TRUE(bit_equal(loaded.step(t[65]), orig->step(t[65])));
}

INSTANTIATE_TEST_SUITE_P(Modes, SessionFile, testing::Values(Numerics::kReference, Numerics::kPrecise),
                         [](const auto& i) { return i.param == Numerics::kReference ? "reference" : "precise"; });

TEST(SessionFile, CheckpointSharesRowsWithTheState) {
  const uint64_t fp = 1;
  // Same tokens: the checkpoint's compressed rows are all shared, so the file is much smaller
  // than two full states.
  auto with = session_at(Numerics::kPrecise, 96, 100);
  Session without(tiny_a(), file_opts(Numerics::kPrecise));
  without.append(with->tokens());
  const size_t a = with->save(fp).size(), b = without.save(fp).size();
  EXPECT_GT(a, b);
  EXPECT_LT(a, 2 * b);
}

TEST(SessionFile, FingerprintTracksConfigAndWeights) {
  namespace fs = std::filesystem;
  const std::string src = std::string(DSV4_TEST_DATA_DIR) + "/tiny-a/checkpoint";
  const uint64_t fp = model_fingerprint(*tiny_a());
  EXPECT_EQ(model_fingerprint(*load_model(src)), fp) << "deterministic";
  const fs::path tmp = fs::temp_directory_path() / ("dsv4_fp_test_" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::copy(src, tmp, fs::copy_options::recursive);
  {
    // Same layout, one weight byte changed (inside the sampled head of the embedding).
    auto w = tiny_a();
    const Tensor& e = *w->embed;
    const std::string file = (tmp / fs::path(e.file).filename()).string();
    std::string bytes = read_file(file);
    const size_t at = bytes.find(std::string(reinterpret_cast<const char*>(e.data), 64));
    ASSERT_NE(at, std::string::npos);
    bytes[at] = static_cast<char>(bytes[at] ^ 0x01);
    write_file_atomic(file, bytes);
    EXPECT_NE(model_fingerprint(*load_model(tmp.string())), fp);
    // ... and a session file of the original model does not load into it.
    auto s = session_at(Numerics::kReference, 20, 20);
    auto other = load_model(tmp.string());
    Session o(other, file_opts(Numerics::kReference));
    try {
      o.load(s->save(fp), model_fingerprint(*other), "f.dsv4pc");
      ADD_FAILURE() << "loaded a file of another model";
    } catch (const Error& err) {
      EXPECT_NE(std::string(err.what()).find("f.dsv4pc: model fingerprint"), std::string::npos) << err.what();
    }
  }
  fs::copy_file(src + "/config.json", tmp / "config.json", fs::copy_options::overwrite_existing);
  {
    std::ofstream(tmp / "config.json", std::ios::app) << "\n";
    fs::remove_all(tmp / "model-00001-of-00002.safetensors");
    fs::copy_file(src + "/model-00001-of-00002.safetensors", tmp / "model-00001-of-00002.safetensors");
    fs::remove_all(tmp / "model-00002-of-00002.safetensors");
    fs::copy_file(src + "/model-00002-of-00002.safetensors", tmp / "model-00002-of-00002.safetensors");
    EXPECT_NE(model_fingerprint(*load_model(tmp.string())), fp) << "config.json bytes changed";
  }
  fs::remove_all(tmp);
}

}  // namespace
