// Post-training runs after SFT (issue 12; no torch in this header): on-policy distillation
// (`dsv4 train distill`) and GRPO (`dsv4 train grpo`). Both sample with the dsv4 engine's
// batched generation (engine/batch_generate.h) from the trainer's current weights, synced by
// exporting them to the release layout and reloading (the engine then computes what the
// trainer's QAT forward computes, within the trainer/engine parity tolerance).
//
// distill.json:
//   student: trainer checkpoint (.safetensors) or official model directory to start from
//   domains: [{"name": "math", "teacher": checkpoint or directory, "prompts": [[ids...], ...]
//              | "tasks": ["F.jsonl", ...]}, ...]   (each teacher scores its own domain)
//   tokenizer, mode ("non-think" | "think-high" | "think-max"): to render task prompts
//   out; steps, prompts_per_step (per domain), samples_per_prompt, max_tokens, temperature,
//   lr, weight_decay, grad_clip, muon, qat (default true), seed, threads, mtp_weight (0.3)
// Loss: per-token reverse KL(p_student || p_teacher) over the whole vocabulary at every
// completion position, averaged over the completion tokens of the step; plus mtp_weight x the
// same for the student's MTP block against the teacher's next position.
//
// rl.json (GRPO):
//   policy: checkpoint or directory to start from (the SFT model); reference: the same kinds
//   (optional; for the KL penalty, default: the starting policy when kl_weight > 0)
//   prompts / tasks (+ tokenizer, mode) as a distill domain; reward: {"type": "token_fraction",
//   "token": X} (share of completion tokens equal to X) | {"type": "contains_token", "token": X}
//   (synthetic rewards for tests) | {"type": "grade"} (task prompts: 1 when the task's grader
//   accepts the completion, decoded and parsed in `mode`, else 0; tool tasks need multi-turn
//   rollouts that run the tools and are refused for now)
//   group_size (G samples per prompt, default 8), prompts_per_step, max_tokens, temperature
//   (default 1), clip (epsilon, default 0.2), kl_weight (default 0), updates_per_batch
//   (policy updates per sampled batch, default 1), out, steps, lr, weight_decay, grad_clip,
//   muon, qat, seed, threads
// Advantages: (r - mean of the group) / (std of the group + 1e-4); loss per completion token:
// -min(ratio A, clip(ratio, 1 - eps, 1 + eps) A) + kl_weight * k3(ref), ratio = exp(logp -
// logp_old) with logp_old the trainer's log-probabilities at sync time.
//
// Both write OUT/checkpoint.safetensors (trainer checkpoint; `dsv4 train export` makes a model
// of it) and OUT/log.jsonl (one line per step), atomically.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace dsv4::train {

struct PromptSet {
  std::vector<std::vector<int64_t>> prompts;  // token ids
  // When read from task files: each prompt's task as its JSON line (grader, tool_env, ...),
  // for rewards that grade; empty for id prompts.
  std::vector<std::string> task_json;
};

struct PostCommon {
  std::string source, out;
  std::string tokenizer, mode = "think-high";  // task prompts (and graded rewards)
  int64_t steps = 20, prompts_per_step = 4, max_tokens = 32;
  double temperature = 1.0, lr = 1e-3, weight_decay = 0.0, grad_clip = 1.0;
  bool muon = true, qat = true;
  uint64_t seed = 0;
  int threads = 0;
};

struct DistillDomain {
  std::string name, teacher;
  PromptSet prompts;
};

struct DistillConfig {
  PostCommon common;
  std::string student;
  std::vector<DistillDomain> domains;
  int64_t samples_per_prompt = 1;
  // The MTP block is distilled along: its row i (predicting token i+2) against the teacher's
  // main-head distribution at i+1, reverse KL on the completion positions, with this weight.
  double mtp_weight = 0.3;
};

struct GrpoReward {
  std::string type = "token_fraction";  // "token_fraction" | "contains_token" | "grade"
  int64_t token = -1;
};

struct GrpoConfig {
  PostCommon common;
  std::string policy, reference;
  PromptSet prompts;
  GrpoReward reward;
  int64_t group_size = 8, updates_per_batch = 1;
  double clip = 0.2, kl_weight = 0.0;
};

// Parse the JSON text; `source` names it in errors; relative paths resolve against its folder.
DistillConfig parse_distill_config(const std::string& json_text, const std::string& source);
GrpoConfig parse_grpo_config(const std::string& json_text, const std::string& source);

struct PostStepLog {
  int64_t step = 0;  // 1-based
  double loss = 0, lr = 0, grad_norm = 0;
  double kl = 0;                      // distill: mean reverse KL; GRPO: mean k3 KL to the reference
  double mtp_kl = 0;                  // distill: the MTP block's reverse KL (see DistillConfig)
  std::vector<double> domain_kl;      // distill: per domain
  double reward_mean = 0;             // GRPO
  double completion_tokens = 0;       // mean completion length
  double clip_fraction = 0;           // GRPO: share of tokens whose ratio was clipped
  // GRPO: max |engine sampling logprob - trainer logprob| over the sampled tokens at sync time
  // (how on-policy the rollouts are: the trainer/engine parity gap)
  double sync_logprob_diff = 0;
};

struct PostOptions {
  bool quiet = false;
  std::function<void(const PostStepLog&)> on_step;
  // GRPO: when set, the reward of a completion (generated ids, EOS included when written) of
  // prompt `prompt` (index into the config's prompts), replacing the config's reward.
  std::function<double(size_t prompt, const std::vector<int64_t>& completion)> reward;
};

// The "grade" reward of a GRPO config with task prompts: decodes the completion with the
// config's tokenizer, parses it in the config's mode (reasoning / content / DSML tool calls)
// and returns 1 when tasks::grade accepts it, else 0.
std::function<double(size_t prompt, const std::vector<int64_t>& completion)> make_grade_reward(const GrpoConfig& c);

void run_distill(const DistillConfig& c, const PostOptions& o);
void run_grpo(const GrpoConfig& c, const PostOptions& o);

}  // namespace dsv4::train
