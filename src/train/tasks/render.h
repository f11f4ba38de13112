// Tasks rendered in the V4 chat format of our encoder: the one place that maps a reasoning
// mode to encoder options (eval, SFT data and pre-training text all use it).
#pragma once
#include <string>

#include "text/chat_encoder.h"
#include "train/tasks/task.h"

namespace dsv4::tasks {

// non-think = chat mode; think-high = thinking, effort "high" (no prefix in the preview
// table); think-max = thinking, effort "max". Reasoning of earlier tool-call turns is kept
// (drop_thinking = false), as V4 keeps it across tool calls.
chat::EncodeOptions encode_options(Mode m);

// The prompt (messages + tools) followed by the mode's target messages, as one prompt text
// (BOS, special tokens as text). Throws Error naming the task when the mode has no target
// or the encoder rejects the conversation.
std::string render_conversation(const Task& t, Mode m);

}  // namespace dsv4::tasks
