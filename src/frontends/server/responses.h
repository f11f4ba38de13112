// OpenAI Responses API output: the response object, its output items (`reasoning` with the
// <think> text as reasoning_text content, `message` with one output_text part,
// `function_call` with call_id / name / arguments), usage, and the streaming events in the
// official order, each with its sequence_number:
//   response.created, response.in_progress,
//   per item: response.output_item.added,
//     reasoning: response.content_part.added, response.reasoning_text.delta*, .done, content_part.done
//     message:   response.content_part.added, response.output_text.delta*, .done, content_part.done
//     function:  response.function_call_arguments.delta*, .done
//   response.output_item.done,
//   then response.completed / response.incomplete (max_output_tokens) / response.failed.
#pragma once
#include <string>
#include <vector>

#include "frontends/server/json_fields.h"
#include "frontends/server/scheduler.h"

namespace dsv4::server {

struct ResponseShell {
  std::string id;      // resp_...
  int64_t created = 0;
  std::string model;
  Json echo;           // ResponsesRequest::echo
  bool include_encrypted_reasoning = false;
};

Json responses_usage(const JobResult& r);
// The response object. status: in_progress / completed / incomplete / cancelled / failed.
Json response_object(const ResponseShell& s, const std::string& status, Json output, const JobResult* r, Json error = nullptr);
// completed / incomplete / cancelled for a finished job.
std::string response_status(const JobResult& r);

// The output items of a finished job; call_ids receives the function calls' ids.
Json response_output(const ResponseShell& s, const JobResult& r, chat::ThinkingMode mode, std::vector<std::string>& call_ids);
// The assistant chat message that the output items stand for (for the stored conversation).
Json output_to_chat_message(const Json& output);

// Job events -> Responses SSE events (type, data).
class ResponsesStreamer {
 public:
  explicit ResponsesStreamer(ResponseShell shell) : s_(std::move(shell)) {}
  std::vector<Json> start();
  std::vector<Json> on_events(const std::vector<JobEvent>& events);
  std::vector<Json> finish(const JobResult& r);
  std::vector<Json> failed(const std::string& message);
  const Json& output() const { return output_; }
  const std::vector<std::string>& call_ids() const { return call_ids_; }
  const Json& final_response() const { return final_; }

 private:
  enum class Item { None, Reasoning, Message, Call };
  Json event(const char* type, Json data);
  void open(Item kind, Json item, std::vector<Json>& out);
  void close(std::vector<Json>& out);
  ResponseShell s_;
  int64_t seq_ = 0;
  Item cur_ = Item::None;
  Json item_;         // the open item
  std::string text_;  // its text / arguments so far
  Json output_ = Json::array();
  std::vector<std::string> call_ids_;
  Json final_;
};

// SSE framing: "event: TYPE\ndata: JSON\n\n" per event.
std::string responses_sse(const std::vector<Json>& events);

}  // namespace dsv4::server
