#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numbers>

#include "base/error.h"
#include "base/file.h"
#include "train/run.h"

namespace dsv4::train {

namespace fs = std::filesystem;
using nlohmann::json;

RunConfig parse_run_config(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(source + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw Error(source + ": not a JSON object");
  const fs::path base = fs::path(source).parent_path();
  auto rel = [&](const std::string& p) { return p.empty() || fs::path(p).is_absolute() ? p : (base / p).string(); };
  static const char* known[] = {"model", "init_from", "data", "out", "seq_len", "batch", "steps", "lr", "min_lr_ratio",
                                "warmup", "schedule", "wsd_decay", "weight_decay", "grad_clip", "muon", "mtp_weight",
                                "balance_weight", "bias_update_rate", "indexer_warmup", "indexer_weight", "qat", "compute", "muon_ns",
                                "eval_every", "eval_batches", "checkpoint_every", "log_every", "seed", "threads", "objective"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool ok = false;
    for (const char* k : known) ok = ok || it.key() == k;
    if (!ok) throw Error(source + ": unknown field " + it.key());
  }
  RunConfig r;
  r.source = source;
  if (!j.contains("model")) throw Error(source + ": missing field model (config.json object or path)");
  if (j["model"].is_string()) {
    const std::string p = rel(j["model"].get<std::string>());
    r.model = parse_config(read_file(p), p);
  } else if (j["model"].is_object()) {
    r.model = parse_config(j["model"].dump(), source + ": model");
  } else {
    throw Error(source + ": field model must be a config.json object or a path");
  }
  auto str = [&](const char* k, std::string& v, bool path) {
    if (!j.contains(k)) return;
    if (!j[k].is_string()) throw Error(source + ": field " + k + " must be a string");
    v = path ? rel(j[k].get<std::string>()) : j[k].get<std::string>();
  };
  auto num = [&](const char* k, auto& v, double lo, double hi) {
    if (!j.contains(k)) return;
    if (!j[k].is_number()) throw Error(source + ": field " + k + " must be a number");
    const double d = j[k].get<double>();
    if (!(d >= lo && d <= hi)) throw Error(source + ": field " + k + " = " + j[k].dump() + " outside [" + json(lo).dump() + ", " + json(hi).dump() + "]");
    using T = std::decay_t<decltype(v)>;
    if constexpr (std::is_integral_v<T>) {
      if (!j[k].is_number_integer()) throw Error(source + ": field " + k + " must be an integer");
      v = j[k].get<T>();
    } else {
      v = d;
    }
  };
  auto flag = [&](const char* k, bool& v) {
    if (!j.contains(k)) return;
    if (!j[k].is_boolean()) throw Error(source + ": field " + k + " must be true or false");
    v = j[k].get<bool>();
  };
  str("init_from", r.init_from, true);
  str("data", r.data, true);
  str("out", r.out, true);
  if (r.data.empty()) throw Error(source + ": missing field data");
  if (r.out.empty()) throw Error(source + ": missing field out");
  num("seq_len", r.seq_len, 2, 1 << 20);
  num("batch", r.batch, 1, 1 << 20);
  num("steps", r.steps, 0, 1e12);
  num("lr", r.lr, 0, 1e6);
  num("min_lr_ratio", r.min_lr_ratio, 0, 1);
  num("warmup", r.warmup, 0, 1e12);
  str("schedule", r.schedule, false);
  if (r.schedule != "cosine" && r.schedule != "wsd") throw Error(source + ": field schedule must be \"cosine\" or \"wsd\"");
  num("wsd_decay", r.wsd_decay, 0, 1);
  num("weight_decay", r.weight_decay, 0, 1e3);
  num("grad_clip", r.grad_clip, 0, 1e12);
  flag("muon", r.muon);
  num("mtp_weight", r.mtp_weight, 0, 1e3);
  num("balance_weight", r.balance_weight, 0, 1e3);
  num("bias_update_rate", r.bias_update_rate, 0, 1e3);
  num("indexer_warmup", r.indexer_warmup, 0, 1e12);
  num("indexer_weight", r.indexer_weight, 0, 1e3);
  flag("qat", r.qat);
  std::string compute = "fp32";
  str("compute", compute, false);
  if (compute != "fp32" && compute != "bf16") throw Error(source + ": field compute must be \"fp32\" or \"bf16\"");
  r.bf16 = compute == "bf16";
  std::string ns = "fp32";
  str("muon_ns", ns, false);
  if (ns != "fp32" && ns != "bf16") throw Error(source + ": field muon_ns must be \"fp32\" or \"bf16\"");
  r.muon_ns_bf16 = ns == "bf16";
  num("eval_every", r.eval_every, 0, 1e12);
  num("eval_batches", r.eval_batches, 1, 1e9);
  num("checkpoint_every", r.checkpoint_every, 0, 1e12);
  num("log_every", r.log_every, 1, 1e12);
  num("seed", r.seed, 0, 1.8e19);
  num("threads", r.threads, 0, 4096);
  std::string objective = "lm";
  str("objective", objective, false);
  if (objective != "lm" && objective != "sft") throw Error(source + ": field objective must be \"lm\" or \"sft\"");
  r.sft = objective == "sft";
  return r;
}

RunConfig load_run_config(const std::string& path) { return parse_run_config(read_file(path), path); }

double lr_at(const RunConfig& r, int64_t s) {
  if (s < r.warmup) return r.lr * static_cast<double>(s + 1) / static_cast<double>(r.warmup);
  const double lo = r.lr * r.min_lr_ratio;
  const double n = static_cast<double>(std::max<int64_t>(1, r.steps - r.warmup));
  const double x = static_cast<double>(s - r.warmup) / n;  // 0 .. 1
  if (r.schedule == "wsd") {
    const double start = 1.0 - r.wsd_decay;
    if (x < start) return r.lr;
    return r.lr + (lo - r.lr) * (x - start) / std::max(r.wsd_decay, 1e-12);
  }
  return lo + 0.5 * (r.lr - lo) * (1.0 + std::cos(std::numbers::pi * std::min(x, 1.0)));
}

}  // namespace dsv4::train
