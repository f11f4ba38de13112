// SFT data (no torch in this file): task JSONL -> chat-encoded examples whose loss mask covers
// exactly the assistant's tokens (reasoning, content, tool calls, each turn's EOS) in every
// mode; version-2 token data round trip and example packing; errors name file and line; an
// SFT run's loss falls. Also GRPO's grade reward (torch-free too).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/file.h"
#include "text/tokenizer.h"
#include "tiny_config.h"
#include "train/post_run.h"
#include "train/run.h"
#include "train/sft_data.h"
#include "train/token_data.h"

namespace dsv4::train {
namespace {

namespace fs = std::filesystem;

const Tokenizer& v4_tokenizer() {
  static const Tokenizer t = Tokenizer::load(std::string(DSV4_ASSETS_DIR) + "/deepseek-v4-tokenizer.json.gz");
  return t;
}

std::string tasks_file() { return std::string(DSV4_TEST_DATA_DIR) + "/sft/tasks.jsonl"; }

std::string tmp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("dsv4_sft_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

std::vector<nlohmann::ordered_json> read_tasks() {
  std::vector<nlohmann::ordered_json> v;
  std::ifstream f(tasks_file());
  for (std::string l; std::getline(f, l);)
    if (!l.empty()) v.push_back(nlohmann::ordered_json::parse(l));
  return v;
}

// The text of the target tokens and of the other tokens, each run of consecutive tokens of
// one kind joined, runs separated by "|".
std::pair<std::string, std::string> split_text(const Example& ex) {
  std::string target, other;
  for (size_t i = 0; i < ex.tokens.size(); ++i) {
    std::string& s = ex.loss[i] ? target : other;
    if (i > 0 && ex.loss[i] != ex.loss[i - 1] && !s.empty()) s += "|";
    s += v4_tokenizer().decode(std::vector<int32_t>{static_cast<int32_t>(ex.tokens[i])}, false);
  }
  return {target, other};
}

TEST(SftData, MaskCoversExactlyTheAssistantTokensPerMode) {
  const auto tasks = read_tasks();
  ASSERT_EQ(tasks.size(), 2u);
  const auto& t = tasks[0];
  const std::string eos = "<｜end▁of▁sentence｜>";
  {
    Example ex = render_sft_example(t["messages"], nlohmann::ordered_json::array(), t["targets"]["non-think"], "non-think",
                                    v4_tokenizer(), "t0");
    auto [target, other] = split_text(ex);
    EXPECT_EQ(target, "14" + eos);
    EXPECT_EQ(other, "<｜begin▁of▁sentence｜><｜User｜>What is 2+3*4?<｜Assistant｜></think>");
  }
  {
    Example ex = render_sft_example(t["messages"], nlohmann::ordered_json::array(), t["targets"]["think-high"], "think-high",
                                    v4_tokenizer(), "t0");
    auto [target, other] = split_text(ex);
    EXPECT_EQ(target, "3*4 = 12, 2+12 = 14.</think>14" + eos);
    EXPECT_EQ(other, "<｜begin▁of▁sentence｜><｜User｜>What is 2+3*4?<｜Assistant｜><think>");
  }
  {
    Example ex = render_sft_example(t["messages"], nlohmann::ordered_json::array(), t["targets"]["think-max"], "think-max",
                                    v4_tokenizer(), "t0");
    auto [target, other] = split_text(ex);
    EXPECT_EQ(target, "3*4 = 12, 2+12 = 14. Check: 14-2 = 12 = 3*4.</think>14" + eos);
    EXPECT_NE(other.find("Reasoning Effort: Absolute maximum"), std::string::npos);  // the max prefix
  }
  // Tool conversation: both assistant turns (tool call and answer, reasoning kept) are
  // targets; the tool result is not.
  const auto& u = tasks[1];
  Example ex = render_sft_example(u["messages"], u["tools"], u["targets"]["think-high"], "think-high", v4_tokenizer(), "t1");
  auto [target, other] = split_text(ex);
  EXPECT_EQ(target,
            "Use the tool.</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"calculator\">\n<｜DSML｜parameter "
            "name=\"expression\" string=\"true\">17*23</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>" + eos +
                "|The tool says 391.</think>391" + eos);
  EXPECT_NE(other.find("## Tools"), std::string::npos);
  const std::string tail = "<｜User｜>Compute 17*23 with the calculator.<｜Assistant｜><think>|<｜User｜><tool_result>391</tool_result><｜Assistant｜><think>";
  ASSERT_GE(other.size(), tail.size());
  EXPECT_EQ(other.substr(other.size() - tail.size()), tail);
}

TEST(SftData, PrepareRoundTripAndPacking) {
  const std::string dir = tmp_dir("prep");
  const SftDataStats st = prepare_sft_data({tasks_file()}, v4_tokenizer(), sft_mode_names(), dir, 0.0, v4_tokenizer().vocab_size());
  EXPECT_EQ(st.tasks, 2);
  EXPECT_EQ(st.examples, 4);  // 3 modes of task 0, think-high of task 1
  EXPECT_EQ(st.skipped, 2);
  const TokenData d = open_token_data(dir, v4_tokenizer().vocab_size());
  ASSERT_TRUE(d.masked);
  ASSERT_EQ(d.train_examples.size(), 4u);
  // Example 0 again (non-think of task 0), then padding: a row longer than examples 0 + 1.
  const auto t0 = read_tasks()[0];
  const Example e0 = render_sft_example(t0["messages"], nlohmann::ordered_json::array(), t0["targets"]["non-think"], "non-think",
                                        v4_tokenizer(), "");
  const Example e1 = render_sft_example(t0["messages"], nlohmann::ordered_json::array(), t0["targets"]["think-high"], "think-high",
                                        v4_tokenizer(), "");
  // Held-out rows read the val split: none here. Read train rows with val_example_row's
  // packing through a copy whose val split is the train split.
  TokenData v = open_token_data(dir, 0);
  std::swap(v.val, v.train);
  std::swap(v.val_examples, v.train_examples);
  const int64_t len = static_cast<int64_t>(e0.tokens.size() + e1.tokens.size()) + 3;
  std::vector<int64_t> tok(static_cast<size_t>(len));
  std::vector<uint8_t> loss(static_cast<size_t>(len));
  val_example_row(v, 0, len, tok.data(), loss.data());
  std::vector<int64_t> want = e0.tokens;
  want.insert(want.end(), e1.tokens.begin(), e1.tokens.end());
  std::vector<uint8_t> want_loss = e0.loss;
  want_loss.insert(want_loss.end(), e1.loss.begin(), e1.loss.end());
  for (int i = 0; i < 3; ++i) {  // example 2 does not fit whole: padding
    want.push_back(d.eos_token_id);
    want_loss.push_back(0);
  }
  EXPECT_EQ(tok, want);
  EXPECT_EQ(loss, want_loss);
  // A row shorter than the example: its first tokens.
  std::vector<int64_t> tok5(5);
  std::vector<uint8_t> loss5(5);
  val_example_row(v, 0, 5, tok5.data(), loss5.data());
  EXPECT_EQ(tok5, std::vector<int64_t>(e0.tokens.begin(), e0.tokens.begin() + 5));
  // Held out by task: with val_fraction 0.5 the last task (one example) is held out and the
  // three modes of the first task stay together in train.
  prepare_sft_data({tasks_file()}, v4_tokenizer(), sft_mode_names(), dir + "/split", 0.5, v4_tokenizer().vocab_size());
  const TokenData sp = open_token_data(dir + "/split", 0);
  EXPECT_EQ(sp.train_examples.size(), 3u);
  EXPECT_EQ(sp.val_examples.size(), 1u);
  // Version-1 data is not example data.
  write_token_data(dir + "/v1", {{5, 6, 7}}, 64, 1, 0.0);
  const TokenData d1 = open_token_data(dir + "/v1", 64);
  EXPECT_FALSE(d1.masked);
  EXPECT_THROW(train_example_row(d1, 0, 0, 0, 4, tok.data(), loss.data()), Error);
  fs::remove_all(dir);
}

TEST(SftData, ErrorsNameFileAndLine) {
  const std::string dir = tmp_dir("err");
  auto expect_error = [&](const std::string& content, const std::string& needle) {
    write_file_atomic(dir + "/t.jsonl", content);
    try {
      prepare_sft_data({dir + "/t.jsonl"}, v4_tokenizer(), sft_mode_names(), dir + "/out", 0.0, v4_tokenizer().vocab_size());
      ADD_FAILURE() << "no error for " << content;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  const std::string good = read_file(tasks_file()).substr(0, read_file(tasks_file()).find('\n') + 1);
  expect_error(good + "{not json\n", "t.jsonl:2: invalid JSON");
  expect_error(good + good + "{\"targets\": {}}\n", "t.jsonl:3: missing field messages");
  expect_error("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"targets\": {\"non-think\": [{\"content\": \"y\"}]}}\n",
               "t.jsonl:1");
  expect_error("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n", "no SFT example");
  // Corrupt mask shard: named.
  prepare_sft_data({tasks_file()}, v4_tokenizer(), {"non-think"}, dir + "/ok", 0.0, v4_tokenizer().vocab_size());
  std::string m = read_file(dir + "/ok/train-00000.mask");
  m[3] = 7;
  write_file_atomic(dir + "/ok/train-00000.mask", m);
  try {
    open_token_data(dir + "/ok", 0);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train-00000.mask"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

// The command line: `dsv4 train data sft` (through the dsv4 binary's dispatch to dsv4-train).
TEST(SftData, CommandLine) {
  const std::string dir = tmp_dir("cli");
  const std::string base = std::string(DSV4_BIN) + " train data sft --tasks " + tasks_file() + " --tokenizer " +
                           DSV4_ASSETS_DIR + "/deepseek-v4-tokenizer.json.gz --out " + dir + "/data";
  ASSERT_EQ(std::system((base + " --modes non-think,think-max > " + dir + "/log.txt 2>&1").c_str()), 0) << read_file(dir + "/log.txt");
  EXPECT_NE(read_file(dir + "/log.txt").find("2 tasks -> 2 examples"), std::string::npos) << read_file(dir + "/log.txt");
  const TokenData d = open_token_data(dir + "/data", 0);
  EXPECT_TRUE(d.masked);
  EXPECT_NE(std::system((base + " --modes non-think,high-max > " + dir + "/err.txt 2>&1").c_str()), 0);
  EXPECT_NE(read_file(dir + "/err.txt").find("unknown mode \"high-max\""), std::string::npos) << read_file(dir + "/err.txt");
  fs::remove_all(dir);
}

// GRPO's "grade" reward on task prompts: the completion is decoded, parsed in the config's
// mode and graded by the task's grader (the fixture's task 0: numeric answer 14).
TEST(GrpoGradeReward, GradesDecodedCompletions) {
  const std::string dir = tmp_dir("grade");
  const std::string all = read_file(tasks_file());
  write_file_atomic(dir + "/math.jsonl", all.substr(0, all.find('\n') + 1));
  nlohmann::json j = {{"policy", "p"}, {"out", "o"}, {"tasks", {dir + "/math.jsonl"}},
                      {"tokenizer", std::string(DSV4_ASSETS_DIR) + "/deepseek-v4-tokenizer.json.gz"}, {"mode", "think-high"},
                      {"reward", {{"type", "grade"}}}};
  const GrpoConfig c = parse_grpo_config(j.dump(), dir + "/rl.json");
  const auto reward = make_grade_reward(c);
  auto ids = [](const std::string& text) {
    const std::vector<int32_t> v = v4_tokenizer().encode(text);
    return std::vector<int64_t>(v.begin(), v.end());
  };
  EXPECT_EQ(reward(0, ids("3*4 = 12, 2+12 = 14.</think>The answer is 14<｜end▁of▁sentence｜>")), 1.0);
  EXPECT_EQ(reward(0, ids("3*4 = 12, 2+12 = 15.</think>The answer is 15<｜end▁of▁sentence｜>")), 0.0);
  EXPECT_EQ(reward(0, ids("14 is in the reasoning only")), 0.0);  // cut off before </think>: no answer
  // Token-id prompts and tool tasks are refused, naming the reason.
  j["tasks"] = {tasks_file()};
  try {
    parse_grpo_config(j.dump(), dir + "/rl.json");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tools.calc/train/000000 offers tools"), std::string::npos) << e.what();
  }
  j.erase("tasks");
  j["prompts"] = {{1, 2}};
  EXPECT_THROW(parse_grpo_config(j.dump(), dir + "/rl.json"), Error);
  fs::remove_all(dir);
}

// Learnable SFT examples on the tiny config: a prompt of random ids (not targets), then the
// answer: the prompt's first id + 1, + 2, + 3 (targets), then EOS (target).
void write_sft_examples(const std::string& dir) {
  std::vector<Example> ex;
  uint64_t x = 777;
  for (int e = 0; e < 60; ++e) {
    Example a;
    for (int i = 0; i < 5; ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      a.tokens.push_back(2 + static_cast<int64_t>((x >> 33) % 40));
      a.loss.push_back(0);
    }
    for (int i = 1; i <= 3; ++i) {
      a.tokens.push_back(a.tokens[0] + 10 + i);
      a.loss.push_back(1);
    }
    a.tokens.push_back(1);
    a.loss.push_back(1);
    ex.push_back(a);
  }
  write_example_data(dir, ex, 64, 1, 0.1);
}

TEST(SftRun, MaskedLossFalls) {
  const std::string dir = tmp_dir("run");
  write_sft_examples(dir + "/data");
  nlohmann::json j = {{"model", nlohmann::json::parse(config_to_hf_json(test::tiny_config()))},
                      {"data", dir + "/data"}, {"out", dir + "/out"}, {"objective", "sft"}, {"seq_len", 20},
                      {"batch", 4}, {"steps", 25}, {"lr", 0.01}, {"warmup", 2}, {"eval_every", 25},
                      {"eval_batches", 2}, {"threads", 1}, {"seed", 5}};
  RunConfig r = parse_run_config(j.dump(), dir + "/run.json");
  EXPECT_TRUE(r.sft);
  std::vector<double> ce;
  RunOptions o;
  o.quiet = true;
  o.on_step = [&](const StepLog& s) { ce.push_back(s.ce); };
  run_training(r, o);
  ASSERT_EQ(ce.size(), 25u);
  double last = 0;
  for (size_t i = 20; i < 25; ++i) last += ce[i] / 5;
  std::printf("masked ce: first %.4f, mean of the last 5 %.4f\n", ce[0], last);
  EXPECT_LT(last, 0.6 * ce[0]);
  // An SFT run on version-1 data is refused, naming the data.
  write_token_data(dir + "/v1", {{5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26}}, 64, 1, 0.0);
  j["data"] = dir + "/v1";
  j["eval_every"] = 0;
  try {
    run_training(parse_run_config(j.dump(), dir + "/run.json"), o);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("version 1"), std::string::npos) << e.what();
  }
  j["objective"] = "rl";
  EXPECT_THROW(parse_run_config(j.dump(), dir + "/run.json"), Error);
  fs::remove_all(dir);
}

// Masked tokens contribute nothing: each row holds exactly one example whose last token is not
// a target (loss 0); it is only ever a target (the main head's at the last position, the MTP
// head's one before), never an input. Changing it leaves every step's loss (CE and MTP) and
// hence every gradient and update identical; making it a target changes the losses.
TEST(SftRun, MaskedTargetsGiveNoGradient) {
  const std::string dir = tmp_dir("mask");
  auto run = [&](int64_t last_token, uint8_t last_loss) {
    std::vector<Example> ex;
    for (int e = 0; e < 12; ++e) {
      Example a;
      for (int i = 0; i < 8; ++i) {
        a.tokens.push_back(2 + (e * 7 + i * 3) % 50);
        a.loss.push_back(i >= 4 ? 1 : 0);
      }
      a.tokens.back() = last_token;
      a.loss.back() = last_loss;
      ex.push_back(a);
    }
    fs::remove_all(dir + "/data");
    write_example_data(dir + "/data", ex, 64, 1, 0.0);
    nlohmann::json j = {{"model", nlohmann::json::parse(config_to_hf_json(test::tiny_config()))},
                        {"data", dir + "/data"}, {"out", dir + "/out"}, {"objective", "sft"}, {"seq_len", 7},
                        {"batch", 3}, {"steps", 3}, {"lr", 0.01}, {"warmup", 1}, {"threads", 1}, {"seed", 9}};
    std::vector<double> v;
    RunOptions o;
    o.quiet = true;
    o.on_step = [&](const StepLog& s) {
      v.push_back(s.ce);
      v.push_back(s.mtp);
    };
    run_training(parse_run_config(j.dump(), dir + "/run.json"), o);
    return v;
  };
  const std::vector<double> a = run(3, 0), b = run(40, 0);
  ASSERT_EQ(a.size(), 6u);
  EXPECT_EQ(a, b);  // bitwise
  const std::vector<double> c = run(3, 1), d = run(40, 1);
  EXPECT_NE(c[0], d[0]);
  EXPECT_NE(c[1], d[1]);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dsv4::train
