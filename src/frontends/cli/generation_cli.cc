#include "frontends/cli/generation_cli.h"

#include <unistd.h>

#include <chrono>
#include <random>

#include "base/error.h"
#include "base/file.h"
#include "engine/speculative.h"
#include "backend/thread_pool.h"
#include "engine/model_files.h"
#include "frontends/cli/default_model.h"
#include "model/gguf_model.h"

namespace dsv4::cli {

void add_generation_options(CLI::App& app, GenerationCliOptions& o) {
  app.add_option("-m,--model", o.model, "model directory or GGUF file (default: the built-in default model)");
  app.add_option("--mtp", o.mtp, "MTP sidecar GGUF file (with -m FILE.gguf)");
  app.add_flag("--no-mmap", o.no_mmap, kNoMmapHelp);
  app.add_option("-n,--n-predict", o.n_predict, "tokens to generate at most (-1: until EOS or the context is full)");
  app.add_option("-t,--threads", o.threads, "threads (0: physical cores)")->check(CLI::Range(0, 1024));
  app.add_option("--temp", o.temperature, "temperature (0: greedy)")->check(CLI::Range(0.0f, 100.0f));
  app.add_option("--top-p", o.top_p, "nucleus sampling mass (1: off)")->check(CLI::Range(0.0f, 1.0f));
  app.add_option("--top-k", o.top_k, "keep the k most likely tokens (0: off)")->check(CLI::Range(0, 1 << 30));
  app.add_option("--min-p", o.min_p, "drop tokens below min-p x the top probability (0: off)")->check(CLI::Range(0.0f, 1.0f));
  app.add_option("--repeat-penalty", o.repeat_penalty, "repetition penalty (1: off)");
  app.add_option("--presence-penalty", o.presence_penalty, "presence penalty (0: off)");
  app.add_option("--frequency-penalty", o.frequency_penalty, "frequency penalty (0: off)");
  app.add_option("-s,--seed", o.seed, "random seed (-1: random)");
  app.add_option("--system", o.system, "system prompt");
  app.add_option("--think", o.think, "reasoning mode: none (chat), high, max")->check(CLI::IsMember({"none", "high", "max"}));
  app.add_option("-c,--ctx-size", o.context, "context size in tokens (0: the model's maximum)")->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  app.add_flag("--hide-reasoning", o.hide_reasoning, "do not show the reasoning");
  app.add_flag("--stats", o.stats, "print token counts and speeds after the answer");
  app.add_option("--numerics", o.numerics, "reference (official numerics), precise (FP32 activations) or int8 (precise, GGUF Q8_0 / MXFP4 products on int8 activations)")
      ->check(CLI::IsMember({"reference", "precise", "int8"}));
  app.add_option("--stop", o.stop, "stop string (repeatable)");
  add_spec_options(app, o.spec, o.draft);
}

ThinkSetting parse_think(const std::string& s) {
  ThinkSetting t;
  t.name = s;
  if (s == "none") {
    t.mode = chat::ThinkingMode::Chat;
  } else if (s == "high" || s == "max") {
    t.mode = chat::ThinkingMode::Thinking;
    t.effort = s;
  } else {
    throw Error("reasoning mode must be none, high or max, got '" + s + "'");
  }
  return t;
}

LoadedModel load_model_and_tokenizer(const GenerationCliOptions& o) {
  if (o.threads > 0) set_default_thread_count(o.threads);  // before the pool's first use
  LoadedModel m;
  m.dir = o.model.empty() ? ensure_default_model(true) : o.model;
  const std::string tok_path = model_tokenizer_source(m.dir);
  if (!is_gguf_path(m.dir) && !file_exists(tok_path)) throw Error(tok_path + ": missing (the model directory needs the tokenizer to chat)");
  if (!o.mtp.empty() && !is_gguf_path(m.dir)) throw Error("--mtp " + o.mtp + ": a sidecar needs -m FILE.gguf");
  ProgressBar bar("loading", 1);
  bar.update(0, 3);
  const FileMemory memory = o.no_mmap ? FileMemory::kHugePageCopy : FileMemory::kMapped;
  m.weights = o.mtp.empty() ? load_model(m.dir, memory) : load_gguf_model(m.dir, o.mtp, memory);
  bar.update(1, 3);
  m.tokenizer = std::make_unique<Tokenizer>(load_model_tokenizer(m.dir));
  bar.update(2, 3);
  if (m.tokenizer->vocab_size() > m.weights->config.vocab_size)
    throw Error(tok_path + ": tokenizer vocabulary (" + std::to_string(m.tokenizer->vocab_size()) + " ids) exceeds the model's vocab_size " +
                std::to_string(m.weights->config.vocab_size));
  // Page the weights in now, so the first token does not pay for it.
  touch_weight_pages(*m.weights, [&](int64_t done, int64_t total) {
    if (total > 0) bar.update(2 * total + done, 3 * total);
  });
  bar.clear();
  return m;
}

void add_spec_options(CLI::App& app, std::string& spec, int& draft) {
  app.add_option("--spec", spec,
                 "speculative decoding: mtp (draft with the model's MTP block), none, auto (mtp when the model has an "
                 "MTP block)")
      ->check(CLI::IsMember({"auto", "mtp", "none"}));
  app.add_option("--draft", draft, "tokens drafted per step with --spec mtp (1..4)")->check(CLI::Range(1, kMaxDraft));
}

int spec_draft(const std::string& spec, int draft, const ModelWeights& w) {
  if (spec == "none") return 0;
  const bool has = !w.mtp.empty() && w.config.n_mtp_layers > 0;
  if (spec == "mtp" && !has) throw Error("--spec mtp: the model has no MTP block (num_nextn_predict_layers is 0)");
  return has ? draft : 0;
}

void apply_spec(const GenerationCliOptions& o, const ModelWeights& w, SessionOptions& so, GenerateParams& gp) {
  gp.spec_draft = spec_draft(o.spec, o.draft, w);
  // auto: drafting stops when it does not pay (an untrained MTP head, text it cannot predict).
  if (o.spec == "auto") gp.spec_min_acceptance = kAutoMinAcceptance;
  so.mtp = gp.spec_draft > 0;
}

SessionOptions session_options(const GenerationCliOptions& o) {
  SessionOptions s;
  s.numerics = numerics_from_name(o.numerics);
  s.context = o.context;
  return s;
}

GenerateParams generate_params(const GenerationCliOptions& o, const ThinkSetting& think) {
  GenerateParams p;
  p.sampling.temperature = o.temperature;
  p.sampling.top_p = o.top_p;
  p.sampling.top_k = o.top_k;
  p.sampling.min_p = o.min_p;
  p.sampling.repetition_penalty = o.repeat_penalty;
  p.sampling.presence_penalty = o.presence_penalty;
  p.sampling.frequency_penalty = o.frequency_penalty;
  p.sampling.seed = o.seed >= 0 ? static_cast<uint64_t>(o.seed) : std::random_device{}();
  p.max_tokens = o.n_predict;
  p.stop = o.stop;
  p.mode = think.mode;
  validate(p.sampling);
  return p;
}

std::vector<int64_t> render_prompt(const Tokenizer& tok, const chat::Json& messages, const ThinkSetting& think) {
  chat::EncodeOptions eo;
  eo.thinking_mode = think.mode;
  if (think.mode == chat::ThinkingMode::Thinking && think.effort && *think.effort == "max") eo.reasoning_effort = "max";
  std::string prompt = chat::encode_messages(messages, eo);
  std::vector<int32_t> ids = tok.encode(prompt, /*parse_special=*/true);
  return std::vector<int64_t>(ids.begin(), ids.end());
}

DeltaPrinter::DeltaPrinter(bool hide_reasoning) : tty_(::isatty(STDOUT_FILENO) != 0), hide_(hide_reasoning) {}

void DeltaPrinter::operator()(const chat::StreamDelta& d) {
  using K = chat::StreamDelta::Kind;
  switch (d.kind) {
    case K::Reasoning:
      if (hide_ || d.text.empty()) return;
      if (tty_) {
        if (!in_reasoning_) std::fputs("\033[2m", stdout);
        in_reasoning_ = true;
        std::fputs(d.text.c_str(), stdout);
        std::fflush(stdout);
      } else {
        std::fputs(d.text.c_str(), stderr);
      }
      wrote_reasoning_ = true;
      return;
    case K::Content:
      if (d.text.empty()) return;
      if (in_reasoning_) {
        std::fputs("\033[0m", stdout);
        in_reasoning_ = false;
      }
      if (tty_ && wrote_reasoning_ && !wrote_content_) std::fputs("\n\n", stdout);
      if (!tty_ && wrote_reasoning_ && !wrote_content_) std::fputs("\n", stderr);
      std::fputs(d.text.c_str(), stdout);
      std::fflush(stdout);
      wrote_content_ = true;
      return;
    case K::ToolCallStart:
      if (in_reasoning_) {
        std::fputs("\033[0m", stdout);
        in_reasoning_ = false;
      }
      std::fprintf(stdout, "%s[tool call] %s(", wrote_content_ ? "\n" : "", d.text.c_str());
      wrote_content_ = true;
      return;
    case K::ToolCallArguments:
      std::fputs(d.text.c_str(), stdout);
      return;
    case K::Done:
      return;
  }
}

void DeltaPrinter::finish() {
  if (in_reasoning_) std::fputs("\033[0m", stdout);
  in_reasoning_ = false;
  if (wrote_content_ || (tty_ && wrote_reasoning_)) std::fputs("\n", stdout);
  std::fflush(stdout);
}

ProgressBar::ProgressBar(std::string label, int64_t min_total)
    : label_(std::move(label)), min_total_(min_total), tty_(::isatty(STDERR_FILENO) != 0) {}

void ProgressBar::update(int64_t done, int64_t total) {
  if (!tty_ || total < min_total_ || total <= 0) return;
  const int width = 30;
  const int filled = static_cast<int>(width * done / total);
  std::fprintf(stderr, "\r%s [%.*s%*s] %3d%%", label_.c_str(), filled, "==============================", width - filled, "",
               static_cast<int>(100 * done / total));
  std::fflush(stderr);
  shown_ = true;
}

void ProgressBar::clear() {
  if (shown_) std::fprintf(stderr, "\r\033[K");
  shown_ = false;
}

void print_stats(FILE* out, const GenerateResult& r, uint64_t seed) {
  const GenerateStats& s = r.stats;
  std::fprintf(out, "[prompt %lld tokens (%lld cached), generated %lld; prefill %.1f tok/s, decode %.1f tok/s; finish %s; seed %llu]\n",
               (long long)s.prompt_tokens, (long long)s.cached_tokens, (long long)s.generated_tokens, s.prefill_tok_s(),
               s.decode_tok_s(), finish_reason_name(r.finish), (unsigned long long)seed);
  if (s.drafted_tokens > 0)
    std::fprintf(out, "[speculative: %lld passes, drafted %lld, accepted %lld (%.1f%%)]\n", (long long)s.spec_steps,
                 (long long)s.drafted_tokens, (long long)s.accepted_tokens,
                 100.0 * static_cast<double>(s.accepted_tokens) / static_cast<double>(s.drafted_tokens));
}

}  // namespace dsv4::cli
