// OpenAI / DeepSeek chat-completion requests: JSON body -> validated request -> prompt tokens
// and a scheduler JobSpec. Every malformed field becomes an ApiError (HTTP 400 / 404) that
// names the field; nothing here touches the model, so the fuzz test drives it in process.
//
// DeepSeek semantics (spec section 4):
//  * thinking {type: enabled|disabled}, default enabled; reasoning_effort: none -> disabled,
//    minimal/low/medium/high -> high, xhigh/max -> max; chat_template_kwargs {thinking,
//    enable_thinking, reasoning_effort, drop_thinking} as vLLM clients send them. Precedence:
//    `thinking` > chat_template_kwargs > reasoning_effort "none" > model alias (deepseek-chat:
//    off, deepseek-reasoner: on) > default (on).
//  * In thinking mode a tool-call assistant message without reasoning_content (absent or null)
//    is rejected with the official API's 400 message; "" is accepted.
//  * temperature / top_p / penalties are honoured in both modes (the hosted API ignores them
//    in thinking mode; a local server is more useful when they work).
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "frontends/server/api_error.h"
#include "frontends/server/scheduler.h"
#include "text/chat_encoder.h"
#include "text/tokenizer.h"

namespace dsv4::server {

using Json = json_py::Json;

struct ServerInfo {
  std::string model_id = "deepseek-v4-flash";  // what /v1/models lists and responses echo
  int64_t context = 0;
  int64_t default_max_tokens = 0;  // 0: up to the context
  int64_t max_output_tokens = 0;   // --n-predict: most tokens of one answer (0: up to the context)
  bool strict_model = false;       // unknown model names: 404 (else served by the one model)
};

enum class ToolChoice { None, Auto, Required, Named };

struct ChatRequest {
  std::string model;
  Json messages;  // normalized for the encoder (request tools attached, content flattened)
  chat::EncodeOptions encode;
  bool stream = false;
  bool include_usage = false;
  int64_t max_tokens = -1;  // -1: not given
  SamplingParams sampling;
  std::vector<std::string> stop;
  Json tools = Json::array();
  ToolChoice tool_choice = ToolChoice::None;
  std::string tool_name;  // Named
  bool json = false;
  Json json_schema;  // null: any object
  bool logprobs = false;
  int top_logprobs = 0;
};

// Throws ApiError.
ChatRequest parse_chat_request(const Json& body, const ServerInfo& info);

// Maps a reasoning_effort value to (thinking, effort): throws ApiError for unknown values.
void apply_reasoning_effort(const std::string& value, bool& thinking, std::optional<std::string>& effort);

// Remembers the exact text and tokens the model wrote for a turn with tool calls, keyed by
// tool-call id, so a later request that sends the turn back (re-rendered by the encoder from
// the parsed arguments, which may differ from what the model wrote) gets the model's own bytes
// and tokens again, and the prefix cache hits the whole exchange.
class ToolCallMemory {
 public:
  explicit ToolCallMemory(size_t max_entries = 4096) : max_(max_entries) {}
  struct Turn {
    std::string canonical;  // the encoder's rendering of the assistant turn (after the prompt)
    std::string raw;        // what the model wrote (EOS appended if it stopped without one)
    std::vector<int64_t> tokens;  // the tokens of `raw`
  };
  void remember(const std::string& id, Turn turn);
  bool lookup(const std::string& id, Turn& out) const;

 private:
  size_t max_;
  mutable std::mutex mu_;
  std::map<std::string, Turn> turns_;
  std::vector<std::string> order_;
};

struct Prompt {
  std::string text;
  std::vector<int64_t> tokens;
};

// Renders the messages with the V4 encoder and tokenizes them; tool-call turns found in
// `memory` are replaced by the model's own text and tokens. Throws ApiError for messages the
// encoder rejects.
Prompt build_chat_prompt(const ChatRequest& req, const Tokenizer& tok, const ToolCallMemory* memory);

// The scheduler job for a parsed request and its prompt (max_tokens clamped to what is left of
// the context; throws ApiError 400, with both numbers, when the prompt does not fit).
JobSpec make_job_spec(const ChatRequest& req, const Prompt& prompt, const ServerInfo& info);

// Common sampling fields shared by /v1/completions (temperature, top_p, penalties, seed, stop,
// max_tokens, logprobs as an int there). Throws ApiError.
void parse_sampling_fields(const Json& body, SamplingParams& s, std::vector<std::string>& stop, int64_t& max_tokens);

// max_tokens of a job: the request's (-1: not given -> default_max_tokens or all that is left),
// clamped to the room the context leaves after the prompt and to max_output_tokens.
int64_t clamp_max_tokens(int64_t requested, int64_t prompt_tokens, const ServerInfo& info);

// Resolves the `model` field: the served model id and the DeepSeek aliases are echoed; any
// other name is served by the one model and reported as its id (404 with strict_model).
void check_model_name(const Json& body, const ServerInfo& info, std::string& model);

}  // namespace dsv4::server
