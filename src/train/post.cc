// On-policy distillation and GRPO (torch): rollouts by the engine's batched generation from
// synced weights, losses over the completion tokens. See post_run.h.
#include <ATen/Parallel.h>
#include <torch/types.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/error.h"
#include "base/random.h"
#include "base/file.h"
#include "engine/batch_generate.h"
#include "train/optim.h"
#include "train/post.h"
#include "train/post_run.h"
#include "train/run.h"

namespace dsv4::train {

namespace fs = std::filesystem;
using torch::Tensor;

TrainModel load_any_model(const std::string& path) {
  if (fs::is_directory(path)) {
    if (file_exists((fs::path(path) / "config.json").string())) return load_official(path);
    const std::string ck = (fs::path(path) / "checkpoint.safetensors").string();
    if (file_exists(ck)) return load_model_checkpoint(ck);
    throw Error(path + ": neither a model directory (config.json) nor a run directory (checkpoint.safetensors)");
  }
  if (!file_exists(path)) throw Error(path + ": no such checkpoint or model directory");
  return load_model_checkpoint(path);
}

std::shared_ptr<const ModelWeights> sync_engine_model(const TrainModel& m, const std::string& dir) {
  fs::create_directories(dir);
  const std::string ck = (fs::path(dir) / "checkpoint.safetensors").string();
  const std::string model_dir = (fs::path(dir) / "model").string();
  save_model_checkpoint(ck, m, 0);
  fs::remove_all(model_dir);
  export_checkpoint(ck, model_dir, "");
  return load_model(model_dir);
}

Tensor reverse_kl(const Tensor& student_logits, const Tensor& teacher_logits, const Tensor& mask) {
  const Tensor ls = torch::log_softmax(student_logits.to(torch::kFloat32), -1);
  const Tensor lt = torch::log_softmax(teacher_logits.detach().to(torch::kFloat32), -1);
  const Tensor kl = (ls.exp() * (ls - lt)).sum(-1);
  const Tensor m = mask.to(kl.scalar_type());
  return (kl * m).sum() / m.sum().clamp_min(1.0);
}

Tensor token_logprobs(const Tensor& logits, const Tensor& tokens, double temperature) {
  const int64_t S = logits.size(1);
  Tensor l = logits.narrow(1, 0, S - 1).to(torch::kFloat32);
  if (temperature != 1.0) l = l / temperature;
  return torch::log_softmax(l, -1).gather(-1, tokens.narrow(1, 1, S - 1).unsqueeze(-1)).squeeze(-1);
}

namespace {

uint64_t sample_seed(uint64_t seed, int64_t step, int64_t a, int64_t b) {
  return mix64(seed ^ mix64(static_cast<uint64_t>(step) ^ mix64(static_cast<uint64_t>(a) * 0x100000001B3ull + static_cast<uint64_t>(b))));
}

// Sampled sequences as a padded batch: tokens [B, L] (prompt + completion, EOS padding) and
// mask [B, L-1] (1 at the positions that predict a completion token).
struct Batch {
  Tensor tokens, mask;
  int64_t completion_tokens = 0;
};

Batch make_batch(const std::vector<const std::vector<int64_t>*>& prompts, const std::vector<const BatchCompletion*>& comps,
                 int64_t pad) {
  const int64_t B = static_cast<int64_t>(prompts.size());
  int64_t L = 2;
  for (int64_t i = 0; i < B; ++i)
    L = std::max<int64_t>(L, static_cast<int64_t>(prompts[static_cast<size_t>(i)]->size() + comps[static_cast<size_t>(i)]->tokens.size()));
  Batch b;
  b.tokens = torch::full({B, L}, pad, torch::kInt64);
  b.mask = torch::zeros({B, L - 1}, torch::kFloat32);
  for (int64_t i = 0; i < B; ++i) {
    const auto& p = *prompts[static_cast<size_t>(i)];
    const auto& c = comps[static_cast<size_t>(i)]->tokens;
    int64_t* t = b.tokens[i].data_ptr<int64_t>();
    float* m = b.mask[i].data_ptr<float>();
    const int64_t P = static_cast<int64_t>(p.size()), C = static_cast<int64_t>(c.size());
    for (int64_t k = 0; k < P; ++k) t[k] = p[static_cast<size_t>(k)];
    for (int64_t k = 0; k < C; ++k) {
      t[P + k] = c[static_cast<size_t>(k)];
      m[P + k - 1] = 1.0f;
    }
    b.completion_tokens += C;
  }
  return b;
}

ForwardOptions fwd_options(bool qat) {
  ForwardOptions fo;
  fo.mtp = false;
  fo.qat = qat;
  fo.indexer = IndexerPhase::kSparse;
  fo.indexer_loss = false;
  return fo;
}

void check_prompts(const PromptSet& ps, int64_t vocab, const std::string& where) {
  for (size_t i = 0; i < ps.prompts.size(); ++i)
    for (int64_t t : ps.prompts[i])
      if (t >= vocab)
        throw Error(where + ": prompt " + std::to_string(i) + " holds id " + std::to_string(t) + " outside the vocabulary of " +
                    std::to_string(vocab));
}

// Gradient norm over the model's parameters, clipping to `clip` (> 0).
double clip_gradients(TrainModel& m, double clip) {
  double sq = 0;
  for (const std::string& n : m.names) {
    const Tensor& g = m.params.at(n).grad();
    if (g.defined()) sq += g.pow(2).sum().item<double>();
  }
  const double gnorm = std::sqrt(sq);
  if (!std::isfinite(gnorm)) throw Error("non-finite gradient norm");
  if (clip > 0 && gnorm > clip) {
    torch::NoGradGuard ng;
    for (auto& [n, p] : m.params)
      if (p.grad().defined()) p.mutable_grad().mul_(clip / gnorm);
  }
  return gnorm;
}

void zero_grads(TrainModel& m) {
  for (auto& [n, p] : m.params)
    if (p.grad().defined()) p.mutable_grad().zero_();
}

// Step log lines and the final checkpoint.
struct RunFiles {
  std::string out;
  std::string log;
  explicit RunFiles(const std::string& o) : out(o) { fs::create_directories(o); }
  void add(const nlohmann::json& j) {
    log += j.dump() + "\n";
    write_file_atomic((fs::path(out) / "log.jsonl").string(), log);
  }
};

OptimConfig optim_config(const PostCommon& c) {
  OptimConfig oc;
  oc.weight_decay = c.weight_decay;
  oc.use_muon = c.muon;
  return oc;
}

void set_threads(const PostCommon& c) {
  at::set_num_threads(c.threads > 0 ? c.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
}

}  // namespace

void run_distill(const DistillConfig& c, const PostOptions& o) {
  set_threads(c.common);
  TrainModel student = load_any_model(c.student);
  const int64_t V = student.config.vocab_size;
  std::vector<TrainModel> teachers;
  for (const DistillDomain& d : c.domains) {
    teachers.push_back(load_any_model(d.teacher));
    if (teachers.back().config.vocab_size != V)
      throw Error(c.common.source + ": the teacher of domain " + d.name + " (" + d.teacher + ") has vocab_size " +
                  std::to_string(teachers.back().config.vocab_size) + ", the student " + std::to_string(V));
    check_prompts(d.prompts, V, c.common.source + ": domain " + d.name);
  }
  Optimizer opt(student, optim_config(c.common));
  RunFiles files(c.common.out);
  const std::string sync_dir = (fs::path(c.common.out) / "sync").string();
  const int64_t pad = student.config.eos_token_id;
  const ForwardOptions fo = fwd_options(c.common.qat);
  ForwardOptions fo_mtp = fo;
  fo_mtp.mtp = true;
  const bool use_mtp = c.mtp_weight > 0 && student.config.n_mtp_layers > 0;
  const size_t D = c.domains.size();
  for (int64_t s = 0; s < c.common.steps; ++s) {
    // Rollouts of every domain in one batched generation from the current student.
    auto engine = sync_engine_model(student, sync_dir);
    std::vector<BatchPrompt> req;
    std::vector<size_t> req_domain;
    std::vector<const std::vector<int64_t>*> req_prompt;
    for (size_t d = 0; d < D; ++d) {
      const auto& ps = c.domains[d].prompts.prompts;
      for (int64_t i = 0; i < c.common.prompts_per_step; ++i) {
        const auto& p = ps[static_cast<size_t>((s * c.common.prompts_per_step + i) % static_cast<int64_t>(ps.size()))];
        for (int64_t k = 0; k < c.samples_per_prompt; ++k) {
          BatchPrompt bp;
          bp.tokens = p;
          bp.sampling.temperature = static_cast<float>(c.common.temperature);
          bp.sampling.seed = sample_seed(c.common.seed, s, static_cast<int64_t>(d) * 1000003 + i, k);
          bp.max_tokens = c.common.max_tokens;
          req.push_back(std::move(bp));
          req_domain.push_back(d);
          req_prompt.push_back(&p);
        }
      }
    }
    BatchGenerateOptions go;
    go.numerics = Numerics::kPrecise;
    go.max_sequences = 64;
    const std::vector<BatchCompletion> comps = batch_generate(engine, req, go);
    engine.reset();

    zero_grads(student);
    int64_t total_completion = 0;
    for (const auto& cm : comps) total_completion += static_cast<int64_t>(cm.tokens.size());
    PostStepLog sl;
    sl.step = s + 1;
    sl.domain_kl.assign(D, 0.0);
    double loss_sum = 0, mtp_sum = 0;
    for (size_t d = 0; d < D; ++d) {
      std::vector<const std::vector<int64_t>*> ps;
      std::vector<const BatchCompletion*> cs;
      for (size_t i = 0; i < req.size(); ++i)
        if (req_domain[i] == d) {
          ps.push_back(req_prompt[i]);
          cs.push_back(&comps[i]);
        }
      const Batch b = make_batch(ps, cs, pad);
      if (b.completion_tokens == 0) continue;
      Tensor tl;
      {
        torch::NoGradGuard ng;
        tl = forward(teachers[d], b.tokens, fo).logits;
      }
      const ForwardResult fr = forward(student, b.tokens, use_mtp ? fo_mtp : fo);
      const int64_t L1 = b.tokens.size(1) - 1;
      const Tensor kl_mean = reverse_kl(fr.logits.narrow(1, 0, L1), tl.narrow(1, 0, L1), b.mask);
      sl.domain_kl[d] = kl_mean.item<double>();
      // Weighted by the domain's share of the step's completion tokens: the step's loss is
      // the mean over all completion tokens.
      const double share = static_cast<double>(b.completion_tokens) / static_cast<double>(total_completion);
      Tensor loss = kl_mean * share;
      loss_sum += loss.item<double>();
      if (use_mtp && L1 >= 2) {
        // MTP row i predicts token i+2, which the teacher's main head predicts at i+1.
        const Tensor mtp_kl = reverse_kl(fr.mtp_logits.narrow(1, 0, L1 - 1), tl.narrow(1, 1, L1 - 1), b.mask.narrow(1, 1, L1 - 1));
        loss = loss + c.mtp_weight * share * mtp_kl;
        mtp_sum += share * mtp_kl.item<double>();
      }
      loss.backward();
    }
    sl.kl = loss_sum;
    sl.mtp_kl = mtp_sum;
    sl.loss = loss_sum + c.mtp_weight * mtp_sum;
    sl.lr = c.common.lr;
    sl.completion_tokens = static_cast<double>(total_completion) / static_cast<double>(std::max<size_t>(1, comps.size()));
    if (!std::isfinite(sl.loss)) throw Error("non-finite distillation loss at step " + std::to_string(s + 1));
    sl.grad_norm = clip_gradients(student, c.common.grad_clip);
    opt.step(c.common.lr);
    nlohmann::json j = {{"step", sl.step}, {"loss", sl.loss}, {"kl", sl.kl}, {"lr", sl.lr}, {"grad_norm", sl.grad_norm},
                        {"completion_tokens", sl.completion_tokens}, {"mtp_kl", sl.mtp_kl}};
    for (size_t d = 0; d < D; ++d) j["kl." + c.domains[d].name] = sl.domain_kl[d];
    files.add(j);
    if (!o.quiet)
      std::fprintf(stderr, "distill step %lld/%lld  reverse KL %.4f (MTP %.4f)  |g| %.3g  completion %.1f tokens\n",
                   static_cast<long long>(sl.step), static_cast<long long>(c.common.steps), sl.kl, sl.mtp_kl, sl.grad_norm,
                   sl.completion_tokens);
    if (o.on_step) o.on_step(sl);
  }
  save_model_checkpoint((fs::path(c.common.out) / "checkpoint.safetensors").string(), student, c.common.steps);
  fs::remove_all(sync_dir);
}

void run_grpo(const GrpoConfig& c, const PostOptions& o) {
  set_threads(c.common);
  if (!(c.common.temperature > 0)) throw Error(c.common.source + ": GRPO needs temperature > 0");
  TrainModel policy = load_any_model(c.policy);
  const int64_t V = policy.config.vocab_size;
  check_prompts(c.prompts, V, c.common.source);
  if (c.reward.type != "grade" && c.reward.token >= V) throw Error(c.common.source + ": reward token " + std::to_string(c.reward.token) + " outside the vocabulary");
  std::optional<TrainModel> reference;
  if (c.kl_weight > 0) reference = load_any_model(c.reference.empty() ? c.policy : c.reference);
  Optimizer opt(policy, optim_config(c.common));
  RunFiles files(c.common.out);
  const std::string sync_dir = (fs::path(c.common.out) / "sync").string();
  const int64_t pad = policy.config.eos_token_id;
  const ForwardOptions fo = fwd_options(c.common.qat);
  const int64_t G = c.group_size, NP = c.common.prompts_per_step;
  std::function<double(size_t, const std::vector<int64_t>&)> custom = o.reward;
  if (!custom && c.reward.type == "grade") custom = make_grade_reward(c);
  auto reward_of = [&](size_t prompt, const BatchCompletion& cm) {
    if (custom) return custom(prompt, cm.tokens);
    int64_t hits = 0;
    for (int64_t t : cm.tokens) hits += t == c.reward.token;
    if (c.reward.type == "contains_token") return hits > 0 ? 1.0 : 0.0;
    return cm.tokens.empty() ? 0.0 : static_cast<double>(hits) / static_cast<double>(cm.tokens.size());
  };
  for (int64_t s = 0; s < c.common.steps; ++s) {
    auto engine = sync_engine_model(policy, sync_dir);
    std::vector<BatchPrompt> req;
    std::vector<const std::vector<int64_t>*> req_prompt;
    std::vector<size_t> prompt_index(static_cast<size_t>(NP));
    for (int64_t i = 0; i < NP; ++i) {
      prompt_index[static_cast<size_t>(i)] = static_cast<size_t>((s * NP + i) % static_cast<int64_t>(c.prompts.prompts.size()));
      const auto& p = c.prompts.prompts[prompt_index[static_cast<size_t>(i)]];
      for (int64_t g = 0; g < G; ++g) {
        BatchPrompt bp;
        bp.tokens = p;
        bp.sampling.temperature = static_cast<float>(c.common.temperature);
        bp.sampling.seed = sample_seed(c.common.seed, s, i, g);
        bp.max_tokens = c.common.max_tokens;
        req.push_back(std::move(bp));
        req_prompt.push_back(&p);
      }
    }
    BatchGenerateOptions go;
    go.numerics = Numerics::kPrecise;
    go.max_sequences = 64;
    const std::vector<BatchCompletion> comps = batch_generate(engine, req, go);
    engine.reset();

    // Rewards and group-normalised advantages.
    const int64_t B = NP * G;
    std::vector<double> reward(static_cast<size_t>(B));
    std::vector<float> adv(static_cast<size_t>(B));
    double reward_sum = 0;
    for (int64_t i = 0; i < NP; ++i) {
      double mean = 0, var = 0;
      for (int64_t g = 0; g < G; ++g) {
        const size_t k = static_cast<size_t>(i * G + g);
        reward[k] = reward_of(prompt_index[static_cast<size_t>(i)], comps[k]);
        mean += reward[k] / static_cast<double>(G);
      }
      for (int64_t g = 0; g < G; ++g) var += std::pow(reward[static_cast<size_t>(i * G + g)] - mean, 2) / static_cast<double>(G);
      for (int64_t g = 0; g < G; ++g) {
        const size_t k = static_cast<size_t>(i * G + g);
        adv[k] = static_cast<float>((reward[k] - mean) / (std::sqrt(var) + 1e-4));
        reward_sum += reward[k];
      }
    }
    std::vector<const BatchCompletion*> cs;
    for (const auto& cm : comps) cs.push_back(&cm);
    const Batch b = make_batch(req_prompt, cs, pad);
    const Tensor A = torch::from_blob(adv.data(), {B, 1}, torch::kFloat32).clone();
    const double ntok = std::max(1.0, b.mask.sum().item<double>());
    Tensor ref_lp;
    if (reference) {
      torch::NoGradGuard ng;
      ref_lp = token_logprobs(forward(*reference, b.tokens, fo).logits, b.tokens, c.common.temperature);
    }
    PostStepLog sl;
    sl.step = s + 1;
    sl.reward_mean = reward_sum / static_cast<double>(B);
    sl.completion_tokens = static_cast<double>(b.completion_tokens) / static_cast<double>(B);
    sl.lr = c.common.lr;
    Tensor old_lp;
    for (int64_t u = 0; u < c.updates_per_batch; ++u) {
      zero_grads(policy);
      const Tensor lp = token_logprobs(forward(policy, b.tokens, fo).logits, b.tokens, c.common.temperature);
      if (u == 0) {
        old_lp = lp.detach();  // the policy at sync time: the first update's own values
        // On-policy check: the engine's sampling log-probabilities of the tokens it drew
        // against the trainer's (the same distribution when top-k / top-p are off).
        double diff = 0;
        for (int64_t i = 0; i < B; ++i) {
          const auto& cm = comps[static_cast<size_t>(i)];
          const int64_t P = static_cast<int64_t>(req_prompt[static_cast<size_t>(i)]->size());
          for (size_t k = 0; k < cm.logprobs.size(); ++k)
            diff = std::max(diff, std::fabs(static_cast<double>(cm.logprobs[k]) -
                                            old_lp[i][P - 1 + static_cast<int64_t>(k)].item<double>()));
        }
        sl.sync_logprob_diff = diff;
      }
      const Tensor ratio = torch::exp(lp - old_lp);
      const Tensor clipped = torch::clamp(ratio, 1.0 - c.clip, 1.0 + c.clip);
      const Tensor surr = torch::min(ratio * A, clipped * A);
      Tensor loss = -(surr * b.mask).sum() / ntok;
      double kl = 0;
      if (reference) {
        const Tensor d = ref_lp - lp;
        const Tensor k3 = torch::exp(d) - d - 1.0;
        const Tensor klm = (k3 * b.mask).sum() / ntok;
        loss = loss + c.kl_weight * klm;
        kl = klm.item<double>();
      }
      loss.backward();
      sl.loss = loss.item<double>();
      sl.kl = kl;
      sl.clip_fraction = (((ratio.detach() - clipped.detach()).abs() > 0).to(torch::kFloat32) * b.mask).sum().item<double>() / ntok;
      if (!std::isfinite(sl.loss)) throw Error("non-finite GRPO loss at step " + std::to_string(s + 1));
      sl.grad_norm = clip_gradients(policy, c.common.grad_clip);
      opt.step(c.common.lr);
    }
    files.add({{"step", sl.step}, {"loss", sl.loss}, {"reward_mean", sl.reward_mean}, {"kl", sl.kl}, {"lr", sl.lr},
               {"grad_norm", sl.grad_norm}, {"clip_fraction", sl.clip_fraction}, {"completion_tokens", sl.completion_tokens},
               {"sync_logprob_diff", sl.sync_logprob_diff}});
    if (!o.quiet)
      std::fprintf(stderr, "grpo step %lld/%lld  reward %.4f  loss %.4f  kl %.4f  |g| %.3g  completion %.1f tokens\n",
                   static_cast<long long>(sl.step), static_cast<long long>(c.common.steps), sl.reward_mean, sl.loss, sl.kl,
                   sl.grad_norm, sl.completion_tokens);
    if (o.on_step) o.on_step(sl);
  }
  save_model_checkpoint((fs::path(c.common.out) / "checkpoint.safetensors").string(), policy, c.common.steps);
  fs::remove_all(sync_dir);
}

}  // namespace dsv4::train
