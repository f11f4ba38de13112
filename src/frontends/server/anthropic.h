// Anthropic Messages API (/v1/messages) on top of the OpenAI request path: the request is
// rewritten into an OpenAI chat body (the top-level system and the system-role messages inside
// `messages`, in order -> one system message; thinking / tool_use / tool_result blocks ->
// reasoning_content / tool_calls / tool messages, tools with input_schema -> functions,
// tool_choice auto/any/tool/none -> auto/required/named/none), then parsed and validated by
// parse_chat_request. Reasoning: thinking disabled -> non-think; enabled -> think-high
// (output_config.effort max / xhigh -> think-max); adaptive or absent with output_config.effort
// low -> non-think, medium / high -> think-high, max / xhigh -> think-max. Unknown top-level
// fields (metadata, context_management, service_tier, ...) and cache_control marks are ignored;
// image / document blocks and server tools are a 400 naming the block.
//
// Difference from the OpenAI route: an assistant tool_use turn without a thinking block is
// accepted (reasoning taken as ""), since Anthropic clients often drop thinking blocks.
#pragma once
#include <string>
#include <vector>

#include "frontends/server/chat_request.h"
#include "frontends/server/scheduler.h"

namespace dsv4::server {

// Throws ApiError. The result goes to parse_chat_request.
Json anthropic_to_openai(const Json& body);

// {"type":"error","error":{"type","message"}}
Json anthropic_error_json(const ApiError& e);

std::string anthropic_stop_reason(const JobResult& r);
Json anthropic_usage(const JobResult& r);
Json anthropic_message_json(const std::string& id, const std::string& model, const JobResult& r,
                            chat::ThinkingMode mode, std::vector<std::string>& tool_ids, const std::vector<std::string>& stop = {});
// The stop sequence that ended the output, or null.
Json anthropic_stop_sequence(const JobResult& r, const std::vector<std::string>& stop);

// Job events -> Anthropic SSE events (name, data).
class AnthropicStreamer {
 public:
  AnthropicStreamer(std::string id, std::string model, int64_t prompt_tokens, std::vector<std::string> stop = {});
  std::vector<std::pair<std::string, Json>> start();
  std::vector<std::pair<std::string, Json>> on_events(const std::vector<JobEvent>& events);
  std::vector<std::pair<std::string, Json>> finish(const JobResult& r);
  const std::vector<std::string>& tool_ids() const { return tool_ids_; }

 private:
  enum class Block { None, Thinking, Text, Tool };
  void open(Block b, Json content_block, std::vector<std::pair<std::string, Json>>& out);
  void close(std::vector<std::pair<std::string, Json>>& out);
  std::string id_, model_;
  int64_t prompt_tokens_;
  std::vector<std::string> stop_;
  Block cur_ = Block::None;
  int index_ = -1;
  std::vector<std::string> tool_ids_;
};

}  // namespace dsv4::server
