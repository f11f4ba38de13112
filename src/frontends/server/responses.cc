#include "frontends/server/responses.h"

#include "frontends/server/openai_response.h"
#include "frontends/server/responses_request.h"

namespace dsv4::server {

namespace {
std::string dump(const Json& j) { return j.dump(-1, ' ', false, nlohmann::detail::error_handler_t::replace); }

Json reasoning_item(const ResponseShell& s, const std::string& id, const std::string& text, bool done) {
  Json it = Json::object({{"id", id}, {"type", "reasoning"}, {"summary", Json::array()}});
  it["content"] = done ? Json::array({Json::object({{"type", "reasoning_text"}, {"text", text}})}) : Json::array();
  if (done && s.include_encrypted_reasoning) it["encrypted_content"] = encode_reasoning_content(text);
  if (!done) it["status"] = "in_progress";
  return it;
}

Json text_part(const std::string& text) {
  return Json::object({{"type", "output_text"}, {"text", text}, {"annotations", Json::array()}, {"logprobs", Json::array()}});
}

Json message_item(const std::string& id, const std::string& text, bool done) {
  return Json::object({{"id", id}, {"type", "message"}, {"status", done ? "completed" : "in_progress"}, {"role", "assistant"},
                       {"content", done ? Json::array({text_part(text)}) : Json::array()}});
}

Json call_item(const std::string& id, const std::string& call_id, const std::string& name, const std::string& args, bool done) {
  return Json::object({{"id", id}, {"type", "function_call"}, {"status", done ? "completed" : "in_progress"},
                       {"call_id", call_id}, {"name", name}, {"arguments", args}});
}
}  // namespace

Json responses_usage(const JobResult& r) {
  return Json::object({{"input_tokens", r.prompt_tokens},
                       {"input_tokens_details", Json::object({{"cached_tokens", r.cached_tokens}})},
                       {"output_tokens", r.generated_tokens},
                       {"output_tokens_details", Json::object({{"reasoning_tokens", r.reasoning_tokens}})},
                       {"total_tokens", r.prompt_tokens + r.generated_tokens},
                       {"speculative", speculative_usage_json(r)}});
}

std::string response_status(const JobResult& r) {
  if (r.finish == FinishReason::kCancelled) return "cancelled";
  if (r.finish == FinishReason::kLength) return "incomplete";
  return "completed";
}

Json response_object(const ResponseShell& s, const std::string& status, Json output, const JobResult* r, Json error) {
  Json o = Json::object();
  o["id"] = s.id;
  o["object"] = "response";
  o["created_at"] = s.created;
  o["status"] = status;
  o["background"] = false;
  o["error"] = std::move(error);
  o["incomplete_details"] = status == "incomplete" ? Json::object({{"reason", "max_output_tokens"}}) : Json(nullptr);
  for (const auto& [k, v] : s.echo.items()) o[k] = v;
  o["model"] = s.model;
  o["output"] = std::move(output);
  o["usage"] = r ? responses_usage(*r) : Json(nullptr);
  return o;
}

Json response_output(const ResponseShell& s, const JobResult& r, chat::ThinkingMode mode, std::vector<std::string>& call_ids) {
  Json out = Json::array();
  const chat::ParsedMessage& m = r.message;
  if (mode == chat::ThinkingMode::Thinking && (!m.reasoning_content.empty() || !m.tool_calls.empty()))
    out.push_back(reasoning_item(s, "rs_" + random_hex(32), m.reasoning_content, true));
  if (!m.content.empty() || m.tool_calls.empty()) out.push_back(message_item("msg_" + random_hex(32), m.content, true));
  call_ids.clear();
  for (const auto& c : m.tool_calls) {
    call_ids.push_back("call_" + random_hex(24));
    out.push_back(call_item("fc_" + random_hex(32), call_ids.back(), c.name, c.arguments, true));
  }
  return out;
}

Json output_to_chat_message(const Json& output) {
  Json a = Json::object({{"role", "assistant"}, {"content", ""}, {"reasoning_content", ""}});
  Json calls = Json::array();
  for (const Json& it : output) {
    if (it["type"] == "reasoning") {
      std::string t;
      for (const Json& p : it["content"]) t += p["text"].get<std::string>();
      a["reasoning_content"] = t;
    } else if (it["type"] == "message") {
      std::string t;
      for (const Json& p : it["content"]) t += p["text"].get<std::string>();
      a["content"] = t;
    } else if (it["type"] == "function_call") {
      calls.push_back(Json::object({{"id", it["call_id"]}, {"type", "function"},
                                    {"function", Json::object({{"name", it["name"]}, {"arguments", it["arguments"]}})}}));
    }
  }
  if (!calls.empty()) a["tool_calls"] = std::move(calls);
  return a;
}

Json ResponsesStreamer::event(const char* type, Json data) {
  data["type"] = type;
  data["sequence_number"] = seq_++;
  return data;
}

std::vector<Json> ResponsesStreamer::start() {
  Json snap = response_object(s_, "in_progress", Json::array(), nullptr);
  std::vector<Json> out;
  out.push_back(event("response.created", Json::object({{"response", snap}})));
  out.push_back(event("response.in_progress", Json::object({{"response", snap}})));
  return out;
}

void ResponsesStreamer::open(Item kind, Json item, std::vector<Json>& out) {
  close(out);
  cur_ = kind;
  item_ = std::move(item);
  text_.clear();
  const int64_t index = static_cast<int64_t>(output_.size());
  out.push_back(event("response.output_item.added", Json::object({{"output_index", index}, {"item", item_}})));
  if (kind == Item::Reasoning || kind == Item::Message) {
    Json part = kind == Item::Reasoning ? Json::object({{"type", "reasoning_text"}, {"text", ""}}) : text_part("");
    out.push_back(event("response.content_part.added",
                        Json::object({{"item_id", item_["id"]}, {"output_index", index}, {"content_index", 0}, {"part", part}})));
  }
}

void ResponsesStreamer::close(std::vector<Json>& out) {
  if (cur_ == Item::None) return;
  const int64_t index = static_cast<int64_t>(output_.size());
  const Json id = item_["id"];
  Json done;
  if (cur_ == Item::Reasoning) {
    out.push_back(event("response.reasoning_text.done",
                        Json::object({{"item_id", id}, {"output_index", index}, {"content_index", 0}, {"text", text_}})));
    out.push_back(event("response.content_part.done",
                        Json::object({{"item_id", id}, {"output_index", index}, {"content_index", 0},
                                      {"part", Json::object({{"type", "reasoning_text"}, {"text", text_}})}})));
    done = reasoning_item(s_, id.get<std::string>(), text_, true);
  } else if (cur_ == Item::Message) {
    out.push_back(event("response.output_text.done", Json::object({{"item_id", id}, {"output_index", index}, {"content_index", 0},
                                                                   {"text", text_}, {"logprobs", Json::array()}})));
    out.push_back(event("response.content_part.done",
                        Json::object({{"item_id", id}, {"output_index", index}, {"content_index", 0}, {"part", text_part(text_)}})));
    done = message_item(id.get<std::string>(), text_, true);
  } else {
    out.push_back(event("response.function_call_arguments.done", Json::object({{"item_id", id}, {"output_index", index},
                                                                               {"name", item_["name"]}, {"arguments", text_}})));
    done = call_item(id.get<std::string>(), item_["call_id"].get<std::string>(), item_["name"].get<std::string>(), text_, true);
  }
  out.push_back(event("response.output_item.done", Json::object({{"output_index", index}, {"item", done}})));
  output_.push_back(std::move(done));
  cur_ = Item::None;
}

std::vector<Json> ResponsesStreamer::on_events(const std::vector<JobEvent>& events) {
  std::vector<Json> out;
  using K = chat::StreamDelta::Kind;
  for (const JobEvent& e : events) {
    if (e.kind != JobEvent::Kind::Delta) continue;
    const chat::StreamDelta& d = e.delta;
    const int64_t index = static_cast<int64_t>(output_.size());
    switch (d.kind) {
      case K::Reasoning:
        if (d.text.empty()) break;
        if (cur_ != Item::Reasoning) open(Item::Reasoning, reasoning_item(s_, "rs_" + random_hex(32), "", false), out);
        text_ += d.text;
        out.push_back(event("response.reasoning_text.delta", Json::object({{"item_id", item_["id"]}, {"output_index", static_cast<int64_t>(output_.size())},
                                                                            {"content_index", 0}, {"delta", d.text}})));
        break;
      case K::Content:
        if (d.text.empty()) break;
        if (cur_ != Item::Message) open(Item::Message, message_item("msg_" + random_hex(32), "", false), out);
        text_ += d.text;
        out.push_back(event("response.output_text.delta", Json::object({{"item_id", item_["id"]}, {"output_index", static_cast<int64_t>(output_.size())},
                                                                        {"content_index", 0}, {"delta", d.text}, {"logprobs", Json::array()}})));
        break;
      case K::ToolCallStart:
        call_ids_.push_back("call_" + random_hex(24));
        open(Item::Call, call_item("fc_" + random_hex(32), call_ids_.back(), d.text, "", false), out);
        break;
      case K::ToolCallArguments:
        if (d.text.empty() || cur_ != Item::Call) break;
        text_ += d.text;
        out.push_back(event("response.function_call_arguments.delta",
                            Json::object({{"item_id", item_["id"]}, {"output_index", index}, {"delta", d.text}})));
        break;
      case K::Done:
        break;
    }
  }
  return out;
}

std::vector<Json> ResponsesStreamer::finish(const JobResult& r) {
  std::vector<Json> out;
  close(out);
  const std::string status = response_status(r);
  final_ = response_object(s_, status, output_, &r);
  const char* type = status == "completed" ? "response.completed" : "response.incomplete";
  out.push_back(event(type, Json::object({{"response", final_}})));
  return out;
}

std::vector<Json> ResponsesStreamer::failed(const std::string& message) {
  std::vector<Json> out;
  close(out);
  final_ = response_object(s_, "failed", output_, nullptr, Json::object({{"code", "server_error"}, {"message", message}}));
  out.push_back(event("response.failed", Json::object({{"response", final_}})));
  return out;
}

std::string responses_sse(const std::vector<Json>& events) {
  std::string s;
  for (const Json& e : events) s += "event: " + e["type"].get<std::string>() + "\ndata: " + dump(e) + "\n\n";
  return s;
}

}  // namespace dsv4::server
