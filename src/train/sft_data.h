// Supervised fine-tuning data (issue 12; no torch here): task JSONL (docs/tasks-format.md:
// messages, tools, per-mode targets) -> chat-encoded examples with a loss mask on exactly the
// tokens the assistant produces (reasoning, content, tool calls and each turn's closing EOS),
// not the prompt or tool results -> a version-2 token data directory (train/token_data.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "text/tokenizer.h"
#include "train/token_data.h"

namespace dsv4::train {

// The three V4 reasoning modes as the chat encoder takes them: "non-think" (thinking_mode
// chat), "think-high" (thinking, reasoning_effort "high"), "think-max" (thinking, "max").
// Earlier reasoning in multi-turn tool conversations is kept (drop_thinking = false).
const std::vector<std::string>& sft_mode_names();

// Renders prompt messages (+ tools, OpenAI function tools or empty) followed by the target
// messages in `mode`. Each message's text is the difference between the encodings of the
// conversation up to and before it; assistant messages are targets. Throws Error (prefixed by
// `where`) when the encoder rejects the messages or the per-message tokenisation differs
// from the tokenisation of the whole text.
Example render_sft_example(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                           const nlohmann::ordered_json& targets, const std::string& mode, const Tokenizer& tok,
                           const std::string& where);

struct SftDataStats {
  int64_t tasks = 0, examples = 0, tokens = 0, target_tokens = 0, skipped = 0;  // skipped: no target for a mode
};

// Reads every task of every file (errors name file:line), renders each task x mode that has
// a target, and writes the examples to `out` (version 2). The held-out split takes the last
// val_fraction of the tasks (every mode of a task lands on the same side).
SftDataStats prepare_sft_data(const std::vector<std::string>& task_files, const Tokenizer& tok,
                              const std::vector<std::string>& modes, const std::string& out, double val_fraction,
                              int64_t vocab_size);

}  // namespace dsv4::train
