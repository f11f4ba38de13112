// The training loop end to end on a tiny config (no torch in this file): loss decreases,
// bit-exact resume, clear errors for corrupt shards, mismatched resumes and non-finite losses,
// export loadable by dsv4, the unquantised master-weights GGUF.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/file.h"
#include "model/init.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "ops/formats.h"
#include "ops/ggml_types.h"
#include "train/run.h"
#include "train/token_data.h"
#include "tiny_config.h"

namespace dsv4::train {
namespace {

namespace fs = std::filesystem;

ModelConfig tiny() { return test::tiny_config(); }

// An FP8 block-scaled matrix of the release layout as F32 values.
std::vector<float> dequantize_all(const TensorStore& st, const std::string& name, int64_t block) {
  const Tensor& w = st.get(name);
  const Tensor& sc = st.get(name.substr(0, name.size() - 7) + ".scale");
  const int64_t rows = w.shape[0], cols = w.shape[1], sc_cols = sc.shape[1];
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < cols; ++k)
      out[static_cast<size_t>(r * cols + k)] =
          e4m3_to_f32(w.data[r * cols + k]) * e8m0_to_f32(sc.data[(r / block) * sc_cols + k / block]);
  return out;
}

std::string tmp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("dsv4_train_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

// Learnable documents: counting sequences (next id = id + 1 mod 60) with random starts.
void write_data(const std::string& dir) {
  std::vector<std::vector<int64_t>> docs;
  uint64_t x = 12345;
  for (int d = 0; d < 40; ++d) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    std::vector<int64_t> doc;
    int64_t t = static_cast<int64_t>((x >> 33) % 60);
    for (int i = 0; i < 50; ++i) doc.push_back(2 + (t + i) % 60);
    docs.push_back(doc);
  }
  write_token_data(dir, docs, 64, 1, 0.1);
}

nlohmann::json run_json(const std::string& data, const std::string& out, int64_t steps) {
  return {{"model", nlohmann::json::parse(config_to_hf_json(tiny()))},
                      {"data", data},
                      {"out", out},
                      {"seq_len", 16},
                      {"batch", 4},
                      {"steps", steps},
                      {"lr", 0.01},
                      {"warmup", 2},
                      {"indexer_warmup", 3},
                      {"eval_every", 5},
                      {"eval_batches", 2},
                      {"threads", 1},
                      {"seed", 3}};
}

RunConfig run_config(const std::string& data, const std::string& out, int64_t steps) {
  return parse_run_config(run_json(data, out, steps).dump(), out + "/run.json");
}

std::vector<double> log_losses(const std::string& out) {
  std::vector<double> v;
  std::ifstream in(out + "/log.jsonl");
  for (std::string l; std::getline(in, l);) v.push_back(nlohmann::json::parse(l)["loss"].get<double>());
  return v;
}

std::vector<double> train(const RunConfig& r, bool resume, int64_t stop_after = -1) {
  std::vector<double> losses;
  RunOptions o;
  o.quiet = true;
  o.stop_after = stop_after;
  o.resume = resume;
  o.on_step = [&](const StepLog& s) { losses.push_back(s.loss); };
  run_training(r, o);
  return losses;
}

TEST(TrainRun, LossDecreases) {
  const std::string dir = tmp_dir("decrease");
  write_data(dir + "/data");
  RunConfig r = run_config(dir + "/data", dir + "/out", 30);
  std::vector<double> val;
  RunOptions o;
  o.quiet = true;
  std::vector<double> losses;
  o.on_step = [&](const StepLog& s) {
    losses.push_back(s.ce);
    if (s.val_loss >= 0) val.push_back(s.val_loss);
  };
  run_training(r, o);
  ASSERT_EQ(losses.size(), 30u);
  double first = losses[0], last = 0;
  for (size_t i = 25; i < 30; ++i) last += losses[i] / 5;
  std::printf("ce: first %.4f, mean of the last 5 %.4f; held-out %zu points, last %.4f\n", first, last, val.size(),
              val.empty() ? -1.0 : val.back());
  EXPECT_LT(last, 0.6 * first);
  ASSERT_EQ(val.size(), 6u);
  EXPECT_LT(val.back(), val.front());
  EXPECT_TRUE(file_exists(r.out + "/checkpoint.safetensors"));
  EXPECT_TRUE(file_exists(r.out + "/loss.svg"));
  std::ifstream log(r.out + "/log.jsonl");
  int lines = 0;
  for (std::string l; std::getline(log, l);) ++lines;
  EXPECT_EQ(lines, 30);
  fs::remove_all(dir);
}

TEST(TrainRun, ResumeIsBitExact) {
  const std::string dir = tmp_dir("resume");
  write_data(dir + "/data");
  RunConfig full = run_config(dir + "/data", dir + "/full", 8);
  const std::vector<double> a = train(full, false);
  // Interrupted after 5 steps (past the indexer warm-up), then resumed.
  RunConfig part = run_config(dir + "/data", dir + "/part", 8);
  std::vector<double> b = train(part, false, 5);
  const std::vector<double> c = train(part, true);
  b.insert(b.end(), c.begin(), c.end());
  ASSERT_EQ(a.size(), 8u);
  ASSERT_EQ(b.size(), 8u);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << "step " << i + 1;
  fs::remove_all(dir);
}

TEST(TrainRun, ResumeWithAnotherModelFails) {
  const std::string dir = tmp_dir("mismatch");
  write_data(dir + "/data");
  RunConfig r = run_config(dir + "/data", dir + "/out", 2);
  train(r, false);
  r.model.moe_inter_dim = 64;
  try {
    train(r, true);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("moe_intermediate_size"), std::string::npos) << e.what();
  }
  RunConfig r2 = run_config(dir + "/data", dir + "/out", 2);
  r2.batch = 2;
  try {
    train(r2, true);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("batch"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(TrainRun, CorruptOrTruncatedShardFails) {
  const std::string dir = tmp_dir("corrupt");
  write_data(dir + "/data");
  const std::string shard = dir + "/data/train-00000.u32";
  std::string bytes = read_file(shard);
  std::string bad = bytes;
  bad[100] ^= 0x01;
  write_file_atomic(shard, bad);
  try {
    open_token_data(dir + "/data", 64);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train-00000.u32"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("CRC-32"), std::string::npos) << e.what();
  }
  write_file_atomic(shard, bytes.substr(0, bytes.size() - 6));
  try {
    open_token_data(dir + "/data", 64);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
  write_file_atomic(shard, bytes);
  EXPECT_NO_THROW(open_token_data(dir + "/data", 64));
  // A model with a smaller vocabulary than the data's.
  EXPECT_THROW(open_token_data(dir + "/data", 32), Error);
  fs::remove_all(dir);
}

TEST(TrainRun, NonFiniteLossStopsAndKeepsTheLastCheckpoint) {
  const std::string dir = tmp_dir("nan");
  write_data(dir + "/data");
  RunConfig r = run_config(dir + "/data", dir + "/out", 10);
  r.lr = 1e30;
  r.warmup = 0;
  r.grad_clip = 0;
  r.checkpoint_every = 1;
  try {
    train(r, false);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("non-finite"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("checkpoint.safetensors"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(file_exists(r.out + "/checkpoint.safetensors"));
  fs::remove_all(dir);
}

TEST(TrainRun, ScheduleWarmupCosineWsd) {
  RunConfig r;
  r.lr = 1.0;
  r.min_lr_ratio = 0.1;
  r.warmup = 4;
  r.steps = 104;
  EXPECT_DOUBLE_EQ(lr_at(r, 0), 0.25);
  EXPECT_DOUBLE_EQ(lr_at(r, 3), 1.0);
  EXPECT_DOUBLE_EQ(lr_at(r, 4), 1.0);
  EXPECT_NEAR(lr_at(r, 54), 0.55, 1e-12);  // halfway: (1 + 0.1) / 2
  EXPECT_NEAR(lr_at(r, 104), 0.1, 1e-12);
  r.schedule = "wsd";
  r.wsd_decay = 0.2;
  EXPECT_DOUBLE_EQ(lr_at(r, 80), 1.0);
  EXPECT_NEAR(lr_at(r, 94), 0.55, 1e-12);
  EXPECT_NEAR(lr_at(r, 104), 0.1, 1e-12);
}

// Two processes (Gloo all-reduce of the gradients, each with half of the batch) follow the
// one-process run with the same global batch within FP32 reduction-order differences, and
// resume.
TEST(TrainRun, TwoProcessesMatchOneProcess) {
#if !DSV4_HAVE_GLOO
  GTEST_SKIP() << "built without libgloo-dev";
#endif
  const std::string dir = tmp_dir("dp");
  write_data(dir + "/data");
  RunConfig one = run_config(dir + "/data", dir + "/one", 6);
  const std::vector<double> a = train(one, false);
  nlohmann::json j = run_json(dir + "/data", dir + "/two", 6);
  write_file_atomic(dir + "/run.json", j.dump());
  const std::string cmd = std::string(DSV4_TRAIN_BIN) + " --config " + dir + "/run.json --quiet --nproc 2";
  ASSERT_EQ(std::system((cmd + " --stop-after 4").c_str()), 0);
  ASSERT_EQ(std::system((cmd + " --resume").c_str()), 0);
  const std::vector<double> b = log_losses(dir + "/two");
  ASSERT_EQ(b.size(), a.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(b[i], a[i], 1e-5 * std::fabs(a[i])) << "step " << i + 1;
  // A batch that does not split between the processes.
  j["batch"] = 3;
  write_file_atomic(dir + "/run3.json", j.dump());
  EXPECT_NE(std::system((std::string(DSV4_TRAIN_BIN) + " --config " + dir + "/run3.json --quiet --nproc 2 2>/dev/null").c_str()), 0);
  fs::remove_all(dir);
}

// Three QAT steps on the tiny config in DIR/out (the checkpoint the export tests read).
RunConfig trained_qat_run(const std::string& dir) {
  write_data(dir + "/data");
  RunConfig r = run_config(dir + "/data", dir + "/out", 3);
  r.qat = true;
  train(r, false);
  return r;
}

TEST(TrainRun, ExportLoadsInDsv4) {
  const std::string dir = tmp_dir("export");
  const RunConfig r = trained_qat_run(dir);
  export_checkpoint(r.out, dir + "/model", "");
  auto w = load_model(dir + "/model");  // validates every tensor of the official layout
  EXPECT_EQ(w->config.dim, 32);
  const std::string cmd = std::string(DSV4_BIN) + " check -m " + dir + "/model > /dev/null";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  fs::remove_all(dir);
}

// The master-weights GGUF loads as a model and holds the checkpoint's F32 values exactly (the
// BF16 vectors rounded to BF16), unlike the FP8 / FP4 export next to it.
TEST(TrainRun, MasterGgufHoldsTheUnquantisedWeights) {
  const std::string dir = tmp_dir("master");
  const RunConfig r = trained_qat_run(dir);
  // A vocabulary of the config's size (the GGUF's tokenizer.ggml.* keys).
  nlohmann::json vocab = nlohmann::json::object();
  for (int i = 0; i < 64; ++i) vocab["t" + std::to_string(i)] = i;
  write_file_atomic(dir + "/tokenizer.json",
                    nlohmann::json{{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}}}.dump());
  EXPECT_THROW(export_master_gguf(r.out, dir + "/master.gguf", ""), Error);  // no vocabulary
  export_master_gguf(r.out, dir + "/master.gguf", dir + "/tokenizer.json");
  export_checkpoint(r.out, dir + "/model", "");
  auto master = load_model(dir + "/master.gguf");
  auto quant = load_model(dir + "/model");
  const TensorStore ckpt = TensorStore::open_file(r.out + "/checkpoint.safetensors");
  int matrices = 0, fp4 = 0, vectors = 0;
  bool quant_differs = false;
  for (const TensorSpec& s : expected_tensors(master->config)) {
    if (s.name.compare(0, 4, "mtp.") == 0 || s.dtype == DType::F8_E8M0 || s.dtype == DType::I64) continue;
    const Tensor& t = master->store->get(s.name);
    const bool buffer = s.name.size() > 10 && s.name.compare(s.name.size() - 10, 10, ".gate.bias") == 0;
    const std::vector<float> want = ckpt.read_f32((buffer ? "buffer." : "param.") + s.name);
    std::vector<float> got(want.size());
    if (t.ggml_type == static_cast<int32_t>(GgmlType::F32)) {
      ASSERT_EQ(t.nbytes, got.size() * 4) << s.name;
      std::memcpy(got.data(), t.data, t.nbytes);
      EXPECT_EQ(got, want) << s.name;
      ++matrices;
      fp4 += s.dtype == DType::I8;
      if (s.dtype == DType::F8_E4M3 && !quant_differs) {
        const std::vector<float> q = dequantize_all(*quant->store, s.name, quant->config.weight_block);
        quant_differs = q != want;
      }
    } else if (t.dtype == DType::BF16 && s.shape.size() == 1) {
      for (size_t i = 0; i < got.size(); ++i) {
        uint16_t b;
        std::memcpy(&b, t.data + 2 * i, 2);
        EXPECT_EQ(bf16_to_f32(b), round_bf16(want[i])) << s.name << "[" << i << "]";
      }
      ++vectors;
    } else if (t.dtype == DType::F32) {
      ASSERT_EQ(t.nbytes, got.size() * 4) << s.name;
      std::memcpy(got.data(), t.data, t.nbytes);
      EXPECT_EQ(got, want) << s.name;
    } else {
      ADD_FAILURE() << s.name << ": unexpected stored form (dtype " << dtype_name(t.dtype) << ", ggml type " << t.ggml_type << ")";
    }
  }
  EXPECT_GT(matrices, 10);
  EXPECT_GT(fp4, 0);  // routed experts, F32 in the GGUF
  EXPECT_GT(vectors, 0);
  EXPECT_TRUE(quant_differs) << "the FP8 export should round the master weights";
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dsv4::train
