// `dsv4 train` runs (no torch in this header): the run configuration, the learning-rate
// schedule and the training loop's entry point.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/config.h"

namespace dsv4::train {

// run.json (every field optional except model, data and out):
//   model: HF config.json object, or the path of a config.json (relative to run.json)
//   init_from: official-layout model directory to start from (else random init from seed)
//   data, out: token data directory (train/token_data.h), output directory (checkpoint, logs)
//   seq_len, batch, steps; lr, min_lr_ratio, warmup, schedule ("cosine" | "wsd"), wsd_decay
//   weight_decay, grad_clip, muon (bool), mtp_weight, balance_weight (sequence-wise loss),
//   bias_update_rate (aux-loss-free balancing), indexer_warmup (dense steps), indexer_weight,
//   muon_ns ("fp32" | "bf16"), qat (bool), compute ("fp32" | "bf16": projections in BF16, FP32 master weights), eval_every, eval_batches, checkpoint_every, log_every, seed, threads
//   objective: "lm" (default: next-token loss on windows of the token stream) or "sft" (rows
//     packed from whole examples of version-2 data, loss only on the masked target tokens,
//     the MTP loss masked the same way; `dsv4 train data sft` writes such data)
struct RunConfig {
  std::string source;
  ModelConfig model;
  std::string init_from, data, out;
  int64_t seq_len = 128, batch = 8, steps = 100;
  double lr = 3e-3, min_lr_ratio = 0.1;
  int64_t warmup = 10;
  std::string schedule = "cosine";
  double wsd_decay = 0.2;
  double weight_decay = 0.1, grad_clip = 1.0;
  bool muon = true;
  double mtp_weight = 0.3, balance_weight = 1e-4, bias_update_rate = 1e-3, indexer_weight = 1.0;
  int64_t indexer_warmup = 0;
  bool qat = false;
  bool bf16 = false;     // compute: "bf16"
  bool muon_ns_bf16 = false;  // muon_ns: "bf16" (Newton-Schulz in BF16: ~2x faster here, but
                              // it amplifies rounding differences, e.g. between 1 and N processes)
  int64_t eval_every = 0, eval_batches = 4, checkpoint_every = 0, log_every = 1;
  uint64_t seed = 0;
  int threads = 0;  // 0: all cores
  bool sft = false;  // objective: "sft"
};

// Parses run.json text; `source` names it in errors; relative paths resolve against its folder.
RunConfig parse_run_config(const std::string& json_text, const std::string& source);
RunConfig load_run_config(const std::string& path);

// Learning rate of step s (0-based): linear warm-up to lr, then cosine to lr * min_lr_ratio,
// or WSD (constant, then linear decay over the last wsd_decay fraction of the steps).
double lr_at(const RunConfig& r, int64_t step);

struct StepLog {
  int64_t step = 0;  // 1-based: steps completed
  double loss = 0, ce = 0, mtp = 0, balance = 0, indexer_kl = 0, lr = 0, grad_norm = 0;
  double tokens_per_s = 0;
  double load_max_over_mean = 0;  // expert load (learned-routing layers, averaged)
  double val_loss = -1;           // -1: not evaluated at this step
};

struct RunOptions {
  bool resume = false;     // continue from OUT/checkpoint.safetensors
  bool quiet = false;      // no progress lines
  int64_t stop_after = -1; // >= 0: stop (with a checkpoint) once this many steps are done, as
                           // an interrupted run would (the schedule still spans `steps`)
  std::function<void(const StepLog&)> on_step;
};

// Trains; writes OUT/checkpoint.safetensors (atomically; every checkpoint_every steps and at
// the end), OUT/log.jsonl, OUT/loss.svg. Throws Error on bad data, a checkpoint that does not
// match the run, or a non-finite loss (the last checkpoint is kept).
void run_training(const RunConfig& r, const RunOptions& o);

// Writes the official release layout of a trainer checkpoint (OUT/checkpoint.safetensors)
// into model_dir: config.json, safetensors (FP8 / FP4 / BF16 / F32 as the release), and
// tokenizer.json when given.
void export_checkpoint(const std::string& checkpoint, const std::string& model_dir, const std::string& tokenizer_json);
// Writes the checkpoint's master weights unquantised (F32; the release's BF16 vectors rounded to
// BF16) as a deepseek4 GGUF with the tokenizer's vocabulary and no MTP sidecar: the model the
// quantised export is compared against (`dsv4 eval` runs both).
void export_master_gguf(const std::string& checkpoint, const std::string& gguf_path, const std::string& tokenizer_json);

}  // namespace dsv4::train
