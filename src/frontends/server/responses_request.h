// OpenAI Responses API requests (POST /v1/responses) on top of the chat request path: the body
// is rewritten into an OpenAI chat body (instructions -> leading system message; input items ->
// chat messages: `message` -> system / user / assistant, `reasoning` + `function_call` items ->
// one assistant message with reasoning_content and tool_calls (call_id as the tool-call id),
// `function_call_output` -> tool message; function tools -> chat tools; text.format ->
// response_format; reasoning.effort -> thinking mode), then parsed and validated by
// parse_chat_request like any chat request.
//
// reasoning.effort: none / minimal / low / medium -> non-think, high -> think-high,
// xhigh / max -> think-max; absent -> think-high (DeepSeek's default).
//
// `previous_response_id` puts the stored conversation (see ResponsesStore) before the input;
// `instructions` are not carried over (as the official API). A reasoning item's reasoning
// comes from its encrypted_content (which this server fills with the reasoning text, base64:
// it round-trips exactly), else its reasoning_text content, else its summary.
#pragma once
#include <string>

#include "frontends/server/json_fields.h"
#include "frontends/server/responses_store.h"

namespace dsv4::server {

struct ResponsesRequest {
  Json chat_body;            // for parse_chat_request
  Json conversation;         // chat messages without instructions: previous conversation + this input
  Json echo;                 // request fields the response object repeats (instructions, tools, ...)
  bool store = true;
  bool stream = false;
  bool include_encrypted_reasoning = false;  // include: ["reasoning.encrypted_content"]
};

// Throws ApiError (400 bad input, 404 unknown previous_response_id).
ResponsesRequest parse_responses_request(const Json& body, ResponsesStore& store);

// The opaque encrypted_content of a reasoning item, and back (throws ApiError on a bad value).
std::string encode_reasoning_content(const std::string& reasoning);
std::string decode_reasoning_content(const std::string& encrypted, const std::string& where);

}  // namespace dsv4::server
