#include "frontends/server/anthropic.h"

#include "frontends/server/json_fields.h"
#include "frontends/server/openai_response.h"

namespace dsv4::server {

namespace {
// Text of a string or an array of text blocks (cache_control and citations ignored); any other
// block is a 400 naming it.
std::string text_of_blocks(const Json& c, const std::string& where) {
  if (c.is_string()) return c.get<std::string>();
  if (!c.is_array()) throw bad_request(where + ": content must be a string or an array of blocks", "messages");
  std::string out;
  for (size_t k = 0; k < c.size(); ++k) {
    const Json& b = c[k];
    const std::string bw = where + ".content[" + std::to_string(k) + "]";
    if (!b.is_object() || !field(b, "type") || !b["type"].is_string()) throw bad_request(bw + ": a block needs a string 'type'", "messages");
    if (b["type"] != "text")
      throw bad_request(bw + ": content block type '" + b["type"].get<std::string>() + "' is not supported here (text only)", "messages");
    if (!field(b, "text") || !b["text"].is_string()) throw bad_request(bw + ": a text block needs a string 'text'", "messages");
    out += b["text"].get<std::string>();
  }
  return out;
}

// thinking {type} and output_config.effort -> the chat body's thinking / reasoning_effort:
// disabled -> non-think; enabled -> think (effort max -> think-max); adaptive or absent -> by
// effort: low -> non-think, medium / high -> think-high, max (xhigh) -> think-max, none given ->
// think-high.
void map_thinking(const Json& body, Json& o) {
  std::string type;
  if (const Json* t = field(body, "thinking")) {
    if (!t->is_object()) throw bad_request("'thinking' must be an object like {\"type\": \"enabled\"}", "thinking");
    type = get_string(*t, "type", "", "thinking");
    if (type != "enabled" && type != "disabled" && type != "adaptive")
      throw bad_request("'thinking.type' must be enabled, disabled or adaptive", "thinking");
    // budget_tokens is not enforced: reasoning ends on its own (or at max_tokens).
  }
  std::string effort;
  if (const Json* oc = field(body, "output_config")) {
    if (!oc->is_object()) throw bad_request("'output_config' must be an object", "output_config");
    effort = get_string(*oc, "effort", "", "output_config");
    if (!effort.empty() && effort != "low" && effort != "medium" && effort != "high" && effort != "max" && effort != "xhigh")
      throw bad_request("'output_config.effort' must be low, medium, high, xhigh or max", "output_config");
  }
  if (type.empty() && effort.empty()) return;  // the chat default (thinking on; off for deepseek-chat)
  bool think = type != "disabled";
  if ((type.empty() || type == "adaptive") && effort == "low") think = false;
  o["thinking"] = Json::object({{"type", think ? "enabled" : "disabled"}});
  if (think && (effort == "max" || effort == "xhigh")) o["reasoning_effort"] = "max";
}
}  // namespace

Json anthropic_to_openai(const Json& body) {
  if (!body.is_object()) throw bad_request("the request body must be a JSON object");
  Json o = Json::object();
  // Copied fields; everything else at the top level (metadata, context_management,
  // service_tier, container, mcp_servers, ...) is ignored, as the official API does for fields it
  // does not know.
  for (const char* k : {"model", "temperature", "top_p", "top_k", "stream", "seed"})
    if (const Json* v = field(body, k)) o[k] = *v;
  if (const Json* v = field(body, "max_tokens")) o["max_tokens"] = *v;
  if (const Json* v = field(body, "stop_sequences")) o["stop"] = *v;
  map_thinking(body, o);
  // System text: the top-level `system`, then every system-role message inside `messages`, in
  // order, as one system prompt.
  Json msgs = Json::array();
  std::string system;
  bool has_system = false;
  auto add_system = [&](const std::string& t) {
    system += (has_system && !system.empty() && !t.empty() ? "\n\n" : "") + t;
    has_system = true;
  };
  if (const Json* sys = field(body, "system")) add_system(text_of_blocks(*sys, "system"));
  const Json* in = field(body, "messages");
  if (!in || !in->is_array() || in->empty()) throw bad_request("'messages' must be a non-empty array", "messages");
  for (size_t i = 0; i < in->size(); ++i) {
    const Json& m = (*in)[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) throw bad_request(where + " must be an object", "messages");
    const Json* role = field(m, "role");
    if (!role || !role->is_string() || (*role != "user" && *role != "assistant" && *role != "system"))
      throw bad_request(where + ": 'role' must be user, assistant or system", "messages");
    const Json* content = field(m, "content");
    if (!content) throw bad_request(where + ": 'content' is required", "messages");
    if (*role == "system") {
      add_system(text_of_blocks(*content, where));
      continue;
    }
    if (content->is_string()) {
      msgs.push_back(Json::object({{"role", *role}, {"content", *content}}));
      continue;
    }
    if (!content->is_array()) throw bad_request(where + ": content must be a string or an array of blocks", "messages");
    if (*role == "user") {
      std::string text;
      bool has_text = false;
      for (size_t k = 0; k < content->size(); ++k) {
        const Json& b = (*content)[k];
        const std::string bw = where + ".content[" + std::to_string(k) + "]";
        if (!b.is_object() || !field(b, "type") || !b["type"].is_string()) throw bad_request(bw + ": a block needs a string 'type'", "messages");
        const std::string type = b["type"].get<std::string>();
        if (type == "text") {
          if (!field(b, "text") || !b["text"].is_string()) throw bad_request(where + ": a text block needs 'text'", "messages");
          text += b["text"].get<std::string>();
          has_text = true;
        } else if (type == "tool_result") {
          const Json* id = field(b, "tool_use_id");
          if (!id || !id->is_string()) throw bad_request(bw + ": tool_result needs a string 'tool_use_id'", "messages");
          // is_error: the text says what went wrong; the V4 format has no separate error flag.
          get_bool(b, "is_error", false);
          const Json* c = field(b, "content");
          msgs.push_back(Json::object({{"role", "tool"}, {"tool_call_id", *id}, {"content", c ? text_of_blocks(*c, bw) : std::string()}}));
        } else {
          throw bad_request(bw + ": content block type '" + type + "' is not supported (text and tool_result only)", "messages");
        }
      }
      if (has_text) msgs.push_back(Json::object({{"role", "user"}, {"content", text}}));
    } else {
      Json a = Json::object({{"role", "assistant"}, {"content", ""}, {"reasoning_content", ""}});
      std::string text, reasoning;
      Json calls = Json::array();
      for (size_t k = 0; k < content->size(); ++k) {
        const Json& b = (*content)[k];
        const std::string bw = where + ".content[" + std::to_string(k) + "]";
        if (!b.is_object() || !field(b, "type") || !b["type"].is_string()) throw bad_request(bw + ": a block needs a string 'type'", "messages");
        const std::string type = b["type"].get<std::string>();
        if (type == "text") {
          if (!field(b, "text") || !b["text"].is_string()) throw bad_request(where + ": a text block needs 'text'", "messages");
          text += b["text"].get<std::string>();
        } else if (type == "thinking") {
          if (!field(b, "thinking") || !b["thinking"].is_string()) throw bad_request(where + ": a thinking block needs 'thinking'", "messages");
          reasoning += b["thinking"].get<std::string>();
        } else if (type == "redacted_thinking") {
        } else if (type == "tool_use") {
          const Json* id = field(b, "id");
          const Json* name = field(b, "name");
          const Json* input = field(b, "input");
          if (!id || !id->is_string() || !name || !name->is_string()) throw bad_request(where + ": tool_use needs 'id' and 'name'", "messages");
          if (input && !input->is_object()) throw bad_request(where + ": tool_use 'input' must be an object", "messages");
          calls.push_back(Json::object({{"id", *id}, {"type", "function"},
                                        {"function", Json::object({{"name", *name}, {"arguments", json_py::dumps(input ? *input : Json::object())}})}}));
        } else {
          throw bad_request(bw + ": content block type '" + type + "' is not supported (text, thinking, tool_use only)", "messages");
        }
      }
      a["content"] = text;
      a["reasoning_content"] = reasoning;
      if (!calls.empty()) a["tool_calls"] = std::move(calls);
      msgs.push_back(std::move(a));
    }
  }
  if (has_system) msgs.insert(msgs.begin(), Json::object({{"role", "system"}, {"content", system}}));
  o["messages"] = std::move(msgs);
  if (const Json* tools = field(body, "tools")) {
    if (!tools->is_array()) throw bad_request("'tools' must be an array", "tools");
    Json ot = Json::array();
    for (size_t i = 0; i < tools->size(); ++i) {
      const Json& t = (*tools)[i];
      const std::string w = "tools[" + std::to_string(i) + "]";
      if (!t.is_object() || !field(t, "name") || !t["name"].is_string()) throw bad_request(w + ": a tool needs a string 'name'", "tools");
      const std::string type = get_string(t, "type", "custom", "tools");
      if (type != "custom")
        throw bad_request(w + ": tool type '" + type + "' is not supported (client tools with input_schema only)", "tools");
      Json fn = Json::object({{"name", t["name"]}});
      if (const Json* d = field(t, "description")) fn["description"] = *d;
      fn["parameters"] = field(t, "input_schema") ? t["input_schema"] : Json::object({{"type", "object"}});
      ot.push_back(Json::object({{"type", "function"}, {"function", std::move(fn)}}));
    }
    o["tools"] = std::move(ot);
  }
  if (const Json* tc = field(body, "tool_choice")) {
    if (!tc->is_object() || !field(*tc, "type") || !(*tc)["type"].is_string()) throw bad_request("'tool_choice' must be an object with a 'type'", "tool_choice");
    const std::string type = (*tc)["type"].get<std::string>();
    if (type == "auto") o["tool_choice"] = "auto";
    else if (type == "any") o["tool_choice"] = "required";
    else if (type == "none") o["tool_choice"] = "none";
    else if (type == "tool") {
      const Json* name = field(*tc, "name");
      if (!name || !name->is_string()) throw bad_request("tool_choice type 'tool' needs a 'name'", "tool_choice");
      o["tool_choice"] = Json::object({{"type", "function"}, {"function", Json::object({{"name", *name}})}});
    } else {
      throw bad_request("'tool_choice.type' must be auto, any, tool or none", "tool_choice");
    }
  }
  return o;
}

Json anthropic_error_json(const ApiError& e) {
  std::string type = e.type();
  if (e.status() == 401) type = "authentication_error";
  else if (e.status() == 404) type = "not_found_error";
  else if (e.status() == 413) type = "request_too_large";
  else if (e.status() >= 500) type = e.status() == 503 ? "overloaded_error" : "api_error";
  return Json::object({{"type", "error"}, {"error", Json::object({{"type", type}, {"message", e.what()}})}});
}

std::string anthropic_stop_reason(const JobResult& r) {
  // As finish_reason: a call cut off by max_tokens is "max_tokens", not a finished tool_use.
  if (!r.message.tool_calls.empty() && !(r.finish == FinishReason::kLength && r.message.truncated_tool_call)) return "tool_use";
  switch (r.finish) {
    case FinishReason::kLength: return "max_tokens";
    case FinishReason::kStop: return r.stop_index >= 0 ? "stop_sequence" : "end_turn";
    default: return "end_turn";
  }
}

Json anthropic_usage(const JobResult& r) {
  return Json::object({{"input_tokens", r.prompt_tokens - r.cached_tokens},
                       {"cache_creation_input_tokens", 0},
                       {"cache_read_input_tokens", r.cached_tokens},
                       {"output_tokens", r.generated_tokens},
                       {"speculative", speculative_usage_json(r)}});
}

Json anthropic_stop_sequence(const JobResult& r, const std::vector<std::string>& stop) {
  if (r.finish != FinishReason::kStop || r.stop_index < 0 || static_cast<size_t>(r.stop_index) >= stop.size()) return nullptr;
  return stop[static_cast<size_t>(r.stop_index)];
}

Json anthropic_message_json(const std::string& id, const std::string& model, const JobResult& r,
                            chat::ThinkingMode mode, std::vector<std::string>& tool_ids, const std::vector<std::string>& stop) {
  Json content = Json::array();
  if (mode == chat::ThinkingMode::Thinking && !r.message.reasoning_content.empty())
    content.push_back(Json::object({{"type", "thinking"}, {"thinking", r.message.reasoning_content}, {"signature", ""}}));
  if (!r.message.content.empty()) content.push_back(Json::object({{"type", "text"}, {"text", r.message.content}}));
  tool_ids.clear();
  for (const auto& c : r.message.tool_calls) {
    tool_ids.push_back("toolu_" + random_hex(24));
    Json input;
    try {
      input = json_py::loads(c.arguments);
    } catch (const Error&) {
      input = Json::object();
    }
    if (!input.is_object()) input = Json::object();
    content.push_back(Json::object({{"type", "tool_use"}, {"id", tool_ids.back()}, {"name", c.name}, {"input", input}}));
  }
  Json m = Json::object();
  m["id"] = id;
  m["type"] = "message";
  m["role"] = "assistant";
  m["model"] = model;
  m["content"] = std::move(content);
  m["stop_reason"] = anthropic_stop_reason(r);
  m["stop_sequence"] = anthropic_stop_sequence(r, stop);
  m["usage"] = anthropic_usage(r);
  return m;
}

AnthropicStreamer::AnthropicStreamer(std::string id, std::string model, int64_t prompt_tokens, std::vector<std::string> stop)
    : id_(std::move(id)), model_(std::move(model)), prompt_tokens_(prompt_tokens), stop_(std::move(stop)) {}

std::vector<std::pair<std::string, Json>> AnthropicStreamer::start() {
  Json msg = Json::object({{"id", id_}, {"type", "message"}, {"role", "assistant"}, {"model", model_},
                           {"content", Json::array()}, {"stop_reason", nullptr}, {"stop_sequence", nullptr},
                           {"usage", Json::object({{"input_tokens", prompt_tokens_}, {"output_tokens", 0}})}});
  return {{"message_start", Json::object({{"type", "message_start"}, {"message", std::move(msg)}})}};
}

void AnthropicStreamer::open(Block b, Json content_block, std::vector<std::pair<std::string, Json>>& out) {
  close(out);
  cur_ = b;
  ++index_;
  out.push_back({"content_block_start", Json::object({{"type", "content_block_start"}, {"index", index_}, {"content_block", std::move(content_block)}})});
}

void AnthropicStreamer::close(std::vector<std::pair<std::string, Json>>& out) {
  if (cur_ == Block::None) return;
  if (cur_ == Block::Thinking)
    out.push_back({"content_block_delta", Json::object({{"type", "content_block_delta"}, {"index", index_},
                                                          {"delta", Json::object({{"type", "signature_delta"}, {"signature", ""}})}})});
  out.push_back({"content_block_stop", Json::object({{"type", "content_block_stop"}, {"index", index_}})});
  cur_ = Block::None;
}

std::vector<std::pair<std::string, Json>> AnthropicStreamer::on_events(const std::vector<JobEvent>& events) {
  std::vector<std::pair<std::string, Json>> out;
  using K = chat::StreamDelta::Kind;
  auto delta = [&](Json d) {
    out.push_back({"content_block_delta", Json::object({{"type", "content_block_delta"}, {"index", index_}, {"delta", std::move(d)}})});
  };
  for (const JobEvent& e : events) {
    if (e.kind != JobEvent::Kind::Delta) continue;
    const chat::StreamDelta& d = e.delta;
    switch (d.kind) {
      case K::Reasoning:
        if (d.text.empty()) break;
        if (cur_ != Block::Thinking) open(Block::Thinking, Json::object({{"type", "thinking"}, {"thinking", ""}, {"signature", ""}}), out);
        delta(Json::object({{"type", "thinking_delta"}, {"thinking", d.text}}));
        break;
      case K::Content:
        if (d.text.empty()) break;
        if (cur_ != Block::Text) open(Block::Text, Json::object({{"type", "text"}, {"text", ""}}), out);
        delta(Json::object({{"type", "text_delta"}, {"text", d.text}}));
        break;
      case K::ToolCallStart:
        tool_ids_.push_back("toolu_" + random_hex(24));
        open(Block::Tool, Json::object({{"type", "tool_use"}, {"id", tool_ids_.back()}, {"name", d.text}, {"input", Json::object()}}), out);
        break;
      case K::ToolCallArguments:
        if (!d.text.empty() && cur_ == Block::Tool) delta(Json::object({{"type", "input_json_delta"}, {"partial_json", d.text}}));
        break;
      case K::Done:
        break;
    }
  }
  return out;
}

std::vector<std::pair<std::string, Json>> AnthropicStreamer::finish(const JobResult& r) {
  std::vector<std::pair<std::string, Json>> out;
  close(out);
  out.push_back({"message_delta", Json::object({{"type", "message_delta"},
                                                {"delta", Json::object({{"stop_reason", anthropic_stop_reason(r)}, {"stop_sequence", anthropic_stop_sequence(r, stop_)}})},
                                                {"usage", anthropic_usage(r)}})});
  out.push_back({"message_stop", Json::object({{"type", "message_stop"}})});
  return out;
}

}  // namespace dsv4::server
