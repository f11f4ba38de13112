// Shared pieces of `dsv4 run` and `dsv4 chat`: llama.cpp-style options, model + tokenizer
// loading (with the default model), reasoning-mode settings, and the terminal printer that
// shows reasoning apart from the answer.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/generate.h"
#include "engine/session.h"
#include "model/weights.h"
#include "text/chat_encoder.h"
#include "text/tokenizer.h"

namespace dsv4::cli {

// The --no-mmap flag's help (run, chat, serve, bench).
inline constexpr const char* kNoMmapHelp =
    "copy the weights into memory backed by transparent huge pages instead of mapping the files "
    "(reads the whole model at load and holds its size in RAM; fewer TLB misses, faster decode)";

struct GenerationCliOptions {
  std::string model;           // empty: the built-in default model
  std::string mtp;             // --mtp FILE: MTP sidecar GGUF (with -m FILE.gguf)
  bool no_mmap = false;        // --no-mmap: weights copied into huge-page memory
  int64_t n_predict = -1;      // -1: until EOS or the context is full
  int threads = 0;             // 0: physical cores
  float temperature = 1.0f;    // the model card's default
  float top_p = 1.0f;
  int top_k = 0;
  float min_p = 0.0f;
  float repeat_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  int64_t seed = -1;           // -1: random (printed with --stats)
  std::string system;
  std::string think = "high";  // none | high | max
  int64_t context = 0;         // 0: the model's max_position_embeddings
  bool hide_reasoning = false;
  bool stats = false;
  std::string numerics = "reference";
  std::vector<std::string> stop;
  std::string spec = "auto";   // auto | mtp | none
  int draft = 2;               // tokens drafted per step (1..4)
};

void add_generation_options(CLI::App& app, GenerationCliOptions& o);
// --spec / --draft alone (dsv4 bench takes them too).
void add_spec_options(CLI::App& app, std::string& spec, int& draft);
// Tokens to draft per decode step: --draft with --spec mtp, or with auto on a model with an
// MTP block; 0 with --spec none or auto on a model without one. Throws Error for --spec mtp
// on a model without an MTP block.
int spec_draft(const std::string& spec, int draft, const ModelWeights& w);
// --spec auto stops drafting when fewer than this fraction of the drafts are accepted (after
// the first 32): below it a verify pass plus the drafts cost more than the tokens they save.
inline constexpr double kAutoMinAcceptance = 0.3;

struct ThinkSetting {
  chat::ThinkingMode mode = chat::ThinkingMode::Thinking;
  std::optional<std::string> effort;  // "high" / "max" (thinking mode only)
  std::string name;                   // none | high | max
};
ThinkSetting parse_think(const std::string& s);  // throws Error for anything else

struct LoadedModel {
  std::string dir;
  std::shared_ptr<const ModelWeights> weights;
  std::unique_ptr<Tokenizer> tokenizer;
};
// Loads the model (or creates/uses the default one) and DIR/tokenizer.json; checks that the
// tokenizer fits the model's vocabulary. Shows a progress bar on a terminal while the weights
// are validated and paged in.
LoadedModel load_model_and_tokenizer(const GenerationCliOptions& o);

SessionOptions session_options(const GenerationCliOptions& o);
GenerateParams generate_params(const GenerationCliOptions& o, const ThinkSetting& think);
// run / chat: the session options and parameters with speculation resolved for this model.
void apply_spec(const GenerationCliOptions& o, const ModelWeights& w, SessionOptions& so, GenerateParams& gp);

// Renders messages with the official V4 chat encoder and tokenizes the prompt.
std::vector<int64_t> render_prompt(const Tokenizer& tok, const chat::Json& messages, const ThinkSetting& think);

// Prints streamed deltas: on a terminal the reasoning is dimmed and shown before the answer;
// when stdout is not a terminal, the answer goes to stdout and the reasoning to stderr (so a
// pipe gets the answer alone). --hide-reasoning drops it in both cases.
class DeltaPrinter {
 public:
  DeltaPrinter(bool hide_reasoning);
  void operator()(const chat::StreamDelta& d);
  void finish();  // ends open styles / lines

 private:
  bool tty_;
  bool hide_;
  bool in_reasoning_ = false;
  bool wrote_reasoning_ = false;
  bool wrote_content_ = false;
  std::string tool_args_;
};

// A one-line progress bar on stderr when it is a terminal (no output otherwise).
class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t min_total);
  void update(int64_t done, int64_t total);
  void clear();

 private:
  std::string label_;
  int64_t min_total_;
  bool tty_;
  bool shown_ = false;
};

void print_stats(FILE* out, const GenerateResult& r, uint64_t seed);

}  // namespace dsv4::cli
