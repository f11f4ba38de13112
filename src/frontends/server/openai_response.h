// OpenAI / DeepSeek response shapes: chat.completion, chat.completion.chunk (SSE), usage,
// logprobs, and text_completion for /v1/completions.
#pragma once
#include <string>
#include <vector>

#include "frontends/server/chat_request.h"
#include "frontends/server/scheduler.h"

namespace dsv4::server {

std::string random_hex(size_t n);
std::string new_request_id();  // UUID-shaped, as DeepSeek's API

// DeepSeek usage: prompt_tokens = hit + miss, cached_tokens = hit, reasoning_tokens.
Json usage_json(const JobResult& r);
// dsv4 extension of every usage object (Chat Completions, Completions, Anthropic Messages,
// Responses): {"drafted_tokens", "accepted_tokens"} of MTP speculative decoding, always
// present, zeros when the request was not speculated.
Json speculative_usage_json(const JobResult& r);
// "stop", "length", "tool_calls" (cancelled requests report "stop"; nobody reads them).
std::string finish_reason(const JobResult& r);
// {"content": [{token, logprob, bytes, top_logprobs}]} for the given tokens.
Json logprobs_json(const Tokenizer& tok, const std::vector<int32_t>& tokens, const std::vector<SampleResult>& samples,
                   int top_n);

// The assistant message of a finished chat job; tool calls get fresh ids (returned in ids).
Json chat_message_json(const JobResult& r, chat::ThinkingMode mode, std::vector<std::string>& ids);
Json chat_completion_json(const std::string& id, const std::string& model, int64_t created, const ChatRequest& req,
                          const JobResult& r, const Tokenizer& tok, std::vector<std::string>& ids);

// /v1/completions: one choice (legacy logprobs {tokens, token_logprobs, top_logprobs} when
// tokens and samples are given, else null) and the text_completion object around choices.
Json completion_choice_json(const Tokenizer& tok, const std::string& text, const std::vector<int32_t>* tokens,
                            const std::vector<SampleResult>* samples, int top_n, Json finish);
Json text_completion_json(const std::string& id, int64_t created, const std::string& model, Json choices);

// The tokens sampled since the last streamed chunk, with their samples: a stream's chunk
// carries the logprobs of exactly these (a token whose bytes end mid-character shows up with
// the chunk that completes the text).
struct PendingTokens {
  std::vector<int32_t> tokens;
  std::vector<SampleResult> samples;
  void add(const JobEvent& token_event) {
    tokens.push_back(token_event.token);
    samples.push_back(token_event.sample);
  }
  bool empty() const { return tokens.empty(); }
  void clear() {
    tokens.clear();
    samples.clear();
  }
};

// Turns job events into chat.completion.chunk objects.
class ChatChunker {
 public:
  ChatChunker(std::string id, std::string model, int64_t created, const ChatRequest& req, const Tokenizer& tok);
  std::vector<Json> first();  // the role chunk
  std::vector<Json> on_events(const std::vector<JobEvent>& events);
  std::vector<Json> last(const JobResult& r);  // finish chunk (+ usage chunk)
  const std::vector<std::string>& tool_ids() const { return tool_ids_; }

 private:
  Json chunk(Json delta, Json finish = nullptr);
  std::string id_, model_;
  int64_t created_;
  const ChatRequest& req_;
  const Tokenizer& tok_;
  PendingTokens pending_;
  std::vector<std::string> tool_ids_;
};

}  // namespace dsv4::server
