// Post-training on the tiny config: weight sync (the engine's logits of the synced model equal
// the trainer's QAT forward within the parity tolerance), reverse KL, on-policy distillation
// (the KL to the teachers falls), GRPO with a synthetic reward (the reward mean rises;
// deterministic), config errors.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/file.h"
#include "model/forward.h"
#include "model/state.h"
#include "model/weights.h"
#include "text/tokenizer.h"
#include "tiny_config.h"
#include "train/model.h"
#include "train/post.h"
#include "train/post_run.h"
#include "train/sft_data.h"

namespace dsv4::train {
namespace {

namespace fs = std::filesystem;

std::string tmp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("dsv4_post_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

// model_test.cc's trainer / engine parity tolerance (FP32 on both sides, different orders).
constexpr double kTol = 1e-4;

TEST(PostSync, EngineLogitsMatchTrainerAfterSync) {
  at::set_num_threads(1);
  torch::NoGradGuard ng;
  TrainModel m = init_model(test::tiny_config(), 5);
  torch::manual_seed(6);
  for (auto& [n, p] : m.params)
    if (p.dim() == 1) p.add_(torch::randn_like(p) * 0.1);
  const std::string dir = tmp_dir("sync");
  auto w = sync_engine_model(m, dir + "/sync");
  std::vector<int64_t> tok;
  for (int i = 0; i < 41; ++i) tok.push_back((i * 29 + 3) % 64);
  const int64_t N = static_cast<int64_t>(tok.size()), V = w->config.vocab_size;
  std::vector<float> ref(static_cast<size_t>(N * V));
  SequenceState st(w->config, Numerics::kPrecise);
  ForwardOutput fo;
  fo.logits = ref.data();
  fo.all_logits = true;
  forward(*w, st, tok.data(), N, fo);
  ForwardOptions opt;
  opt.qat = true;
  opt.mtp = false;
  const torch::Tensor t = torch::tensor(tok, torch::kInt64).view({1, -1});
  const torch::Tensor l = forward(m, t, opt).logits.reshape({-1}).to(torch::kFloat64);
  const torch::Tensor r = torch::from_blob(ref.data(), {N * V}, torch::kFloat32).to(torch::kFloat64);
  const double d = (l - r).abs().max().item<double>();
  std::printf("engine vs trainer (QAT) after sync: max |diff| %.3g\n", d);
  EXPECT_LE(d, kTol);
  // A second sync after an update replaces the first: the engine follows the new weights.
  m.params.at("head.weight").mul_(2.0);
  auto w2 = sync_engine_model(m, dir + "/sync");
  SequenceState st2(w2->config, Numerics::kPrecise);
  std::vector<float> ref2(static_cast<size_t>(N * V));
  fo.logits = ref2.data();
  forward(*w2, st2, tok.data(), N, fo);
  const torch::Tensor l2 = forward(m, t, opt).logits.reshape({-1}).to(torch::kFloat64);
  const torch::Tensor r2 = torch::from_blob(ref2.data(), {N * V}, torch::kFloat32).to(torch::kFloat64);
  EXPECT_LE((l2 - r2).abs().max().item<double>(), kTol);
  EXPECT_GT((r2 - r).abs().max().item<double>(), 100 * kTol);
  fs::remove_all(dir);
}

TEST(PostLoss, ReverseKlAndTokenLogprobs) {
  torch::manual_seed(1);
  torch::Tensor s = torch::randn({2, 3, 5}, torch::kFloat32).requires_grad_(true);
  torch::Tensor t = torch::randn({2, 3, 5}, torch::kFloat32);
  torch::Tensor mask = torch::tensor({1.f, 0.f, 1.f, 0.f, 1.f, 0.f}).view({2, 3});
  torch::Tensor kl = reverse_kl(s, t, mask);
  // By hand: sum_v p_s (log p_s - log p_t) at (0,0), (0,2), (1,1), averaged.
  double want = 0;
  for (auto [b, i] : {std::pair{0, 0}, {0, 2}, {1, 1}}) {
    auto ps = torch::softmax(s[b][i].detach().to(torch::kFloat64), 0), pt = torch::softmax(t[b][i].to(torch::kFloat64), 0);
    want += (ps * (ps.log() - pt.log())).sum().item<double>() / 3;
  }
  EXPECT_NEAR(kl.item<double>(), want, 1e-6);
  kl.backward();
  // Masked positions: no gradient.
  EXPECT_EQ(s.grad()[0][1].abs().max().item<float>(), 0.0f);
  EXPECT_EQ(s.grad()[1][0].abs().max().item<float>(), 0.0f);
  EXPECT_GT(s.grad()[0][0].abs().max().item<float>(), 0.0f);
  // KL of a distribution to itself is 0.
  EXPECT_NEAR(reverse_kl(t, t, mask).item<double>(), 0.0, 1e-7);
  // token_logprobs: log_softmax(l / T) at the next token.
  torch::Tensor tok = torch::tensor({3, 1, 4, 0, 2, 2}, torch::kInt64).view({2, 3});
  torch::Tensor lp = token_logprobs(t, tok, 0.5);
  ASSERT_EQ(lp.sizes(), (std::vector<int64_t>{2, 2}));
  EXPECT_NEAR(lp[1][0].item<double>(), torch::log_softmax(t[1][0] / 0.5, 0)[2].item<double>(), 1e-6);
}

// Checkpoint of a tiny model (seed), with its head scaled by `sharpen` (a peaked teacher).
std::string tiny_checkpoint(const std::string& path, uint64_t seed, double sharpen = 1.0) {
  TrainModel m = init_model(test::tiny_config(), seed);
  {
    torch::NoGradGuard ng;
    m.params.at("head.weight").mul_(sharpen);
  }
  save_model_checkpoint(path, m, 0);
  return path;
}

double mean(const std::vector<double>& v, size_t a, size_t b) {
  double s = 0;
  for (size_t i = a; i < b; ++i) s += v[i] / static_cast<double>(b - a);
  return s;
}

TEST(PostDistill, ReverseKlToTheTeachersFalls) {
  const std::string dir = tmp_dir("distill");
  nlohmann::json j = {
      {"student", tiny_checkpoint(dir + "/student.safetensors", 12)},
      {"domains",
       {{{"name", "a"}, {"teacher", tiny_checkpoint(dir + "/ta.safetensors", 11, 2.0)}, {"prompts", {{5, 6, 7}, {9, 10}, {20, 21, 22, 23}}}},
        {{"name", "b"}, {"teacher", tiny_checkpoint(dir + "/tb.safetensors", 13, 2.0)}, {"prompts", {{30, 31}, {40}}}}}},
      {"out", dir + "/out"}, {"steps", 18}, {"prompts_per_step", 2}, {"samples_per_prompt", 2}, {"max_tokens", 8},
      {"lr", 0.03}, {"seed", 4}, {"threads", 1}};
  const DistillConfig c = parse_distill_config(j.dump(), dir + "/distill.json");
  std::vector<double> kl;
  PostOptions o;
  o.quiet = true;
  std::vector<double> mtp;
  o.on_step = [&](const PostStepLog& s) {
    kl.push_back(s.kl);
    mtp.push_back(s.mtp_kl);
    ASSERT_EQ(s.domain_kl.size(), 2u);
  };
  run_distill(c, o);
  ASSERT_EQ(kl.size(), 18u);
  const double first = mean(kl, 0, 3), last = mean(kl, 15, 18);
  std::printf("reverse KL: mean of the first 3 steps %.4f, of the last 3 %.4f\n", first, last);
  EXPECT_LT(last, 0.75 * first);  // measured here: 1.97 -> 1.26
  // The MTP block learns the teacher's next-position distribution along.
  const double mfirst = mean(mtp, 0, 3), mlast = mean(mtp, 15, 18);
  std::printf("MTP reverse KL: %.4f -> %.4f\n", mfirst, mlast);
  EXPECT_GT(mfirst, 0.0);
  EXPECT_LT(mlast, 0.9 * mfirst);  // measured here: 2.04 -> 1.56
  EXPECT_TRUE(fs::exists(dir + "/out/checkpoint.safetensors"));
  EXPECT_TRUE(fs::exists(dir + "/out/log.jsonl"));
  EXPECT_FALSE(fs::exists(dir + "/out/sync"));
  fs::remove_all(dir);
}

nlohmann::json grpo_json(const std::string& dir, int64_t steps) {
  return {{"policy", dir + "/policy.safetensors"}, {"prompts", {{5, 6, 7}, {9, 10}, {20, 21, 22, 23}, {33}}},
          {"reward", {{"type", "token_fraction"}, {"token", 7}}}, {"group_size", 8}, {"prompts_per_step", 2},
          {"max_tokens", 8}, {"out", dir + "/out"}, {"steps", steps}, {"lr", 0.01}, {"kl_weight", 0.01},
          {"updates_per_batch", 2}, {"seed", 2}, {"threads", 1}};
}

std::vector<double> grpo_rewards(const nlohmann::json& j, const std::string& source) {
  std::vector<double> r;
  PostOptions o;
  o.quiet = true;
  o.on_step = [&](const PostStepLog& s) {
    r.push_back(s.reward_mean);
    // The engine sampled from what the trainer computes (parity tolerance on the logits).
    EXPECT_LE(s.sync_logprob_diff, 4 * kTol) << "step " << s.step;
  };
  run_grpo(parse_grpo_config(j.dump(), source), o);
  return r;
}

TEST(PostGrpo, SyntheticRewardRises) {
  const std::string dir = tmp_dir("grpo");
  tiny_checkpoint(dir + "/policy.safetensors", 21);
  const std::vector<double> r = grpo_rewards(grpo_json(dir, 16), dir + "/rl.json");
  ASSERT_EQ(r.size(), 16u);
  const double first = mean(r, 0, 4), last = mean(r, 12, 16);
  std::printf("reward (share of token 7): mean of the first 4 steps %.4f, of the last 4 %.4f\n", first, last);
  EXPECT_GT(last, first + 0.1);
  EXPECT_GT(last, 2 * first);
  // Seeded and deterministic: a second run of the first steps gives the same rewards.
  const std::vector<double> again = grpo_rewards(grpo_json(dir, 3), dir + "/rl.json");
  ASSERT_EQ(again.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(again[i], r[i]) << i;
  fs::remove_all(dir);
}

// A caller's reward (e.g. a task grader) replaces the config's: prompt i of the step scores i.
TEST(PostGrpo, RewardHook) {
  const std::string dir = tmp_dir("hook");
  tiny_checkpoint(dir + "/policy.safetensors", 21);
  nlohmann::json j = grpo_json(dir, 2);
  j["group_size"] = 2;
  j["max_tokens"] = 2;
  std::vector<double> r;
  PostOptions o;
  o.quiet = true;
  o.reward = [](size_t prompt, const std::vector<int64_t>& completion) {
    EXPECT_FALSE(completion.empty());
    return static_cast<double>(prompt);
  };
  o.on_step = [&](const PostStepLog& s) { r.push_back(s.reward_mean); };
  run_grpo(parse_grpo_config(j.dump(), dir + "/rl.json"), o);
  // Step 1 takes prompts 0 and 1, step 2 prompts 2 and 3 (two prompts per step).
  EXPECT_EQ(r, (std::vector<double>{0.5, 2.5}));
  fs::remove_all(dir);
}

// Task prompts are the chat-encoded prompt messages (+ tools) in the asked mode: the same ids
// as the non-target head of the SFT example of that task and mode.
TEST(PostConfig, TaskPromptsAreTheEncodedPrompt) {
  const std::string tasks = std::string(DSV4_TEST_DATA_DIR) + "/sft/tasks.jsonl";
  const std::string tok_path = std::string(DSV4_ASSETS_DIR) + "/deepseek-v4-tokenizer.json.gz";
  nlohmann::json j = {{"policy", "p"}, {"out", "o"}, {"tasks", {tasks}}, {"tokenizer", tok_path}, {"mode", "think-high"},
                      {"reward", {{"type", "contains_token"}, {"token", 5}}}};
  const GrpoConfig c = parse_grpo_config(j.dump(), "/x/rl.json");
  ASSERT_EQ(c.prompts.prompts.size(), 2u);
  ASSERT_EQ(c.prompts.task_json.size(), 2u);
  const Tokenizer tok = Tokenizer::load(tok_path);
  std::ifstream in(tasks);
  size_t i = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const auto t = nlohmann::ordered_json::parse(line);
    const Example ex = render_sft_example(t["messages"], t.contains("tools") ? t["tools"] : nlohmann::ordered_json::array(),
                                          t["targets"]["think-high"], "think-high", tok, "");
    size_t n = 0;
    while (n < ex.loss.size() && !ex.loss[n]) ++n;
    EXPECT_EQ(c.prompts.prompts[i], std::vector<int64_t>(ex.tokens.begin(), ex.tokens.begin() + static_cast<std::ptrdiff_t>(n))) << i;
    EXPECT_EQ(nlohmann::ordered_json::parse(c.prompts.task_json[i])["id"], t["id"]);
    ++i;
  }
  EXPECT_EQ(i, 2u);
  j["mode"] = "think-low";
  EXPECT_THROW(parse_grpo_config(j.dump(), "/x/rl.json"), Error);
}

// The command lines: `dsv4 train grpo` / `dsv4 train distill` run a step and write their log
// and checkpoint; a bad config fails naming the field.
TEST(PostCli, GrpoAndDistillRun) {
  const std::string dir = tmp_dir("cli");
  tiny_checkpoint(dir + "/policy.safetensors", 21);
  nlohmann::json g = grpo_json(dir, 1);
  g["group_size"] = 2;
  g["max_tokens"] = 3;
  write_file_atomic(dir + "/rl.json", g.dump());
  const std::string bin = std::string(DSV4_BIN) + " train ";
  ASSERT_EQ(std::system((bin + "grpo --config " + dir + "/rl.json 2> " + dir + "/log.txt").c_str()), 0) << read_file(dir + "/log.txt");
  EXPECT_NE(read_file(dir + "/log.txt").find("grpo step 1/1  reward"), std::string::npos) << read_file(dir + "/log.txt");
  EXPECT_TRUE(fs::exists(dir + "/out/checkpoint.safetensors"));
  nlohmann::json d = {{"student", dir + "/out"}, {"domains", {{{"name", "a"}, {"teacher", dir + "/policy.safetensors"}, {"prompts", {{5, 6}}}}}},
                      {"out", dir + "/dout"}, {"steps", 1}, {"max_tokens", 3}, {"threads", 1}};
  write_file_atomic(dir + "/distill.json", d.dump());
  ASSERT_EQ(std::system((bin + "distill --config " + dir + "/distill.json --quiet 2> " + dir + "/log2.txt").c_str()), 0) << read_file(dir + "/log2.txt");
  EXPECT_NE(read_file(dir + "/dout/log.jsonl").find("\"kl.a\""), std::string::npos);
  d["steps"] = -1;
  write_file_atomic(dir + "/distill.json", d.dump());
  EXPECT_NE(std::system((bin + "distill --config " + dir + "/distill.json 2> " + dir + "/err.txt").c_str()), 0);
  EXPECT_NE(read_file(dir + "/err.txt").find("field steps"), std::string::npos) << read_file(dir + "/err.txt");
  fs::remove_all(dir);
}

TEST(PostConfig, ErrorsNameTheField) {
  auto expect_error = [](const nlohmann::json& j, const std::string& needle, bool grpo) {
    try {
      if (grpo)
        parse_grpo_config(j.dump(), "/x/rl.json");
      else
        parse_distill_config(j.dump(), "/x/distill.json");
      ADD_FAILURE() << "no error for " << j.dump();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  nlohmann::json g = grpo_json("/x", 1);
  g.erase("reward");
  expect_error(g, "reward", true);
  g = grpo_json("/x", 1);
  g["reward"] = {{"type", "grade"}};
  expect_error(g, "needs task prompts", true);
  g = grpo_json("/x", 1);
  g["group_size"] = 1;
  expect_error(g, "group_size", true);
  g = grpo_json("/x", 1);
  g["typo"] = 1;
  expect_error(g, "unknown field typo", true);
  nlohmann::json d = {{"student", "s"}, {"out", "o"}, {"domains", {{{"name", "a"}, {"prompts", {{1, 2}}}}}}};
  expect_error(d, "domains[0]: missing field teacher", false);
  d["domains"][0]["teacher"] = "t";
  d["domains"][0]["prompts"] = {{1, -2}};
  expect_error(d, "domains[0]: prompts[0]", false);
}

}  // namespace
}  // namespace dsv4::train
