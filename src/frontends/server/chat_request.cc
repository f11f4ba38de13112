#include "frontends/server/chat_request.h"

#include "frontends/server/json_fields.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace dsv4::server {

namespace {

// OpenAI content: a string or an array of text parts -> one string.
std::string flatten_content(const Json& c, const std::string& where) {
  if (c.is_null()) return "";
  if (c.is_string()) return c.get<std::string>();
  if (c.is_array()) {
    std::string out;
    for (const Json& part : c) {
      if (!part.is_object()) throw bad_request(where + ": content parts must be objects", "messages");
      const Json* type = field(part, "type");
      if (!type || !type->is_string() || (*type != "text" && *type != "input_text"))
        throw bad_request(where + ": only text content parts are supported", "messages");
      const Json* text = field(part, "text");
      if (!text || !text->is_string()) throw bad_request(where + ": a text part needs a string 'text'", "messages");
      out += text->get<std::string>();
    }
    return out;
  }
  throw bad_request(where + ": content must be a string or an array of text parts", "messages");
}

Json normalize_message(const Json& m, size_t i, bool thinking) {
  const std::string where = "messages[" + std::to_string(i) + "]";
  if (!m.is_object()) throw bad_request(where + " must be an object", "messages");
  const Json* role_v = field(m, "role");
  if (!role_v || !role_v->is_string()) throw bad_request(where + ": 'role' must be a string", "messages");
  std::string role = role_v->get<std::string>();
  Json out = Json::object();
  if (role == "developer") role = "system";  // OpenAI clients send developer for system prompts
  if (role != "system" && role != "user" && role != "assistant" && role != "tool")
    throw bad_request(where + ": unknown role '" + role + "' (expected system, user, assistant or tool)", "messages");
  out["role"] = role;
  const Json* content = field(m, "content");
  if (role == "user" || role == "system" || role == "tool") {
    if (!content && role != "system") throw bad_request(where + ": 'content' is required", "messages");
    out["content"] = content ? flatten_content(*content, where) : std::string();
  }
  if (role == "tool") {
    const Json* id = field(m, "tool_call_id");
    if (!id || !id->is_string()) throw bad_request(where + ": a tool message needs a string 'tool_call_id'", "messages");
    out["tool_call_id"] = *id;
  }
  if (role == "assistant") {
    out["content"] = content ? flatten_content(*content, where) : std::string();
    const Json* rc = field(m, "reasoning_content");
    if (!rc) rc = field(m, "reasoning");  // vLLM's spelling
    if (rc && !rc->is_string()) throw bad_request(where + ": 'reasoning_content' must be a string", "messages");
    if (rc) out["reasoning_content"] = *rc;
    const Json* calls = field(m, "tool_calls");
    if (calls) {
      if (!calls->is_array()) throw bad_request(where + ": 'tool_calls' must be an array", "messages");
      Json oc = Json::array();
      for (size_t k = 0; k < calls->size(); ++k) {
        const Json& c = (*calls)[k];
        const std::string cw = where + ".tool_calls[" + std::to_string(k) + "]";
        if (!c.is_object()) throw bad_request(cw + " must be an object", "messages");
        const Json* fn = field(c, "function");
        if (!fn || !fn->is_object()) throw bad_request(cw + ": 'function' must be an object", "messages");
        const Json* name = field(*fn, "name");
        if (!name || !name->is_string() || name->get<std::string>().empty())
          throw bad_request(cw + ": 'function.name' must be a non-empty string", "messages");
        const Json* args = field(*fn, "arguments");
        if (args && !args->is_string() && !args->is_object())
          throw bad_request(cw + ": 'function.arguments' must be a JSON string", "messages");
        Json call = Json::object();
        const Json* id = field(c, "id");
        if (id && !id->is_string()) throw bad_request(cw + ": 'id' must be a string", "messages");
        if (id) call["id"] = *id;
        call["type"] = "function";
        call["function"] = Json::object({{"name", *name}, {"arguments", args ? *args : Json("{}")}});
        oc.push_back(std::move(call));
      }
      if (!oc.empty()) {
        if (thinking && !rc)
          throw ApiError(400, "The reasoning_content in the thinking mode must be passed back to the API.",
                         "invalid_request_error", "", "invalid_request_error");
        out["tool_calls"] = std::move(oc);
      }
    }
    if (m.contains("prefix") && m["prefix"].is_boolean() && m["prefix"].get<bool>()) {
      if (i == 0) throw bad_request(where + ": a prefix assistant message must follow a user message", "messages");
      out["wo_eos"] = true;
    }
  }
  return out;
}

}  // namespace

void apply_reasoning_effort(const std::string& v, bool& thinking, std::optional<std::string>& effort) {
  if (v == "none") {
    thinking = false;
    effort.reset();
  } else if (v == "minimal" || v == "low" || v == "medium" || v == "high") {
    effort = "high";
  } else if (v == "xhigh" || v == "max") {
    effort = "max";
  } else {
    throw bad_request("'reasoning_effort' must be one of none, minimal, low, medium, high, xhigh, max", "reasoning_effort");
  }
}

int64_t clamp_max_tokens(int64_t requested, int64_t prompt_tokens, const ServerInfo& info) {
  int64_t room = info.context - prompt_tokens;
  if (info.max_output_tokens > 0) room = std::min(room, info.max_output_tokens);
  if (requested > 0) return std::min(requested, room);
  return info.default_max_tokens > 0 ? std::min(room, info.default_max_tokens) : room;
}

void check_model_name(const Json& body, const ServerInfo& info, std::string& model) {
  model = info.model_id;
  const Json* m = field(body, "model");
  if (!m) return;
  if (!m->is_string()) throw bad_request("'model' must be a string", "model");
  const std::string s = m->get<std::string>();
  static const char* kAliases[] = {"deepseek-v4-flash", "deepseek-v4-pro", "deepseek-chat", "deepseek-reasoner", "dsv4"};
  bool ok = s == info.model_id;
  for (const char* a : kAliases) ok = ok || s == a;
  if (!ok && info.strict_model)
    throw ApiError(404, "The model '" + s + "' does not exist (this server serves '" + info.model_id + "')",
                   "invalid_request_error", "model", "model_not_found");
  model = ok ? s : info.model_id;  // any other name: the served model, reported by its id
}

void parse_sampling_fields(const Json& body, SamplingParams& s, std::vector<std::string>& stop, int64_t& max_tokens) {
  s.temperature = static_cast<float>(get_number(body, "temperature", 0.0, 2.0, 1.0));
  s.top_p = static_cast<float>(get_number(body, "top_p", 0.0, 1.0, 1.0));
  if (s.top_p <= 0.0f) throw bad_request("'top_p' must be greater than 0", "top_p");
  s.presence_penalty = static_cast<float>(get_number(body, "presence_penalty", -2.0, 2.0, 0.0));
  s.frequency_penalty = static_cast<float>(get_number(body, "frequency_penalty", -2.0, 2.0, 0.0));
  s.repetition_penalty = static_cast<float>(get_number(body, "repetition_penalty", 0.01, 10.0, 1.0));
  s.top_k = static_cast<int32_t>(get_int(body, "top_k", -1, 1 << 30, 0));
  s.min_p = static_cast<float>(get_number(body, "min_p", 0.0, 1.0, 0.0));
  const Json* seed = field(body, "seed");
  if (seed) {
    if (!seed->is_number_integer()) throw bad_request("'seed' must be an integer", "seed");
    s.seed = seed->is_number_unsigned() ? seed->get<uint64_t>() : static_cast<uint64_t>(seed->get<int64_t>());
  } else {
    s.seed = std::random_device{}() ^ (static_cast<uint64_t>(std::random_device{}()) << 32);
  }
  stop.clear();
  if (const Json* st = field(body, "stop")) {
    if (st->is_string()) {
      stop.push_back(st->get<std::string>());
    } else if (st->is_array()) {
      if (st->size() > 16) throw bad_request("'stop' may hold at most 16 strings", "stop");
      for (const Json& x : *st) {
        if (!x.is_string()) throw bad_request("'stop' must be a string or an array of strings", "stop");
        stop.push_back(x.get<std::string>());
      }
    } else {
      throw bad_request("'stop' must be a string or an array of strings", "stop");
    }
  }
  max_tokens = get_int(body, "max_tokens", 1, int64_t(1) << 40, -1);
  const int64_t mct = get_int(body, "max_completion_tokens", 1, int64_t(1) << 40, -1);
  if (mct > 0) max_tokens = mct;
}

ChatRequest parse_chat_request(const Json& body, const ServerInfo& info) {
  if (!body.is_object()) throw bad_request("the request body must be a JSON object");
  ChatRequest r;
  check_model_name(body, info, r.model);

  // --- reasoning mode
  bool thinking = true;
  std::optional<std::string> effort;
  bool decided = false;
  if (r.model == "deepseek-chat") thinking = false;
  if (const Json* re = field(body, "reasoning_effort")) {
    if (!re->is_string()) throw bad_request("'reasoning_effort' must be a string", "reasoning_effort");
    apply_reasoning_effort(re->get<std::string>(), thinking, effort);
    if (!thinking) decided = true;
  }
  if (const Json* k = field(body, "chat_template_kwargs")) {
    if (!k->is_object()) throw bad_request("'chat_template_kwargs' must be an object", "chat_template_kwargs");
    for (const char* key : {"thinking", "enable_thinking"})
      if (const Json* t = field(*k, key)) {
        if (!t->is_boolean()) throw bad_request(std::string("'chat_template_kwargs.") + key + "' must be a boolean", "chat_template_kwargs");
        thinking = t->get<bool>();
        decided = true;
      }
    if (const Json* re = field(*k, "reasoning_effort")) {
      if (!re->is_string()) throw bad_request("'chat_template_kwargs.reasoning_effort' must be a string", "chat_template_kwargs");
      bool t2 = thinking;
      apply_reasoning_effort(re->get<std::string>(), t2, effort);
      if (!t2) thinking = false;
    }
    if (const Json* d = field(*k, "drop_thinking")) {
      if (!d->is_boolean()) throw bad_request("'chat_template_kwargs.drop_thinking' must be a boolean", "chat_template_kwargs");
      r.encode.drop_thinking = d->get<bool>();
    }
  }
  (void)decided;
  if (const Json* t = field(body, "thinking")) {
    if (!t->is_object()) throw bad_request("'thinking' must be an object like {\"type\": \"enabled\"}", "thinking");
    const Json* type = field(*t, "type");
    if (!type || !type->is_string() || (*type != "enabled" && *type != "disabled"))
      throw bad_request("'thinking.type' must be \"enabled\" or \"disabled\"", "thinking");
    thinking = *type == "enabled";
  }
  r.encode.thinking_mode = thinking ? chat::ThinkingMode::Thinking : chat::ThinkingMode::Chat;
  r.encode.reasoning_effort = thinking ? effort : std::nullopt;
  if (r.encode.reasoning_effort == "high") r.encode.reasoning_effort.reset();  // the preview's default: no prefix
  r.encode.object_arguments = chat::ObjectArguments::Natural;

  // --- sampling
  parse_sampling_fields(body, r.sampling, r.stop, r.max_tokens);
  if (get_int(body, "n", 1, 1 << 20, 1) != 1) throw bad_request("only n = 1 is supported", "n");
  r.stream = get_bool(body, "stream", false);
  if (const Json* so = field(body, "stream_options")) {
    if (!so->is_object()) throw bad_request("'stream_options' must be an object", "stream_options");
    r.include_usage = get_bool(*so, "include_usage", false);
  }
  r.logprobs = get_bool(body, "logprobs", false);
  r.top_logprobs = static_cast<int>(get_int(body, "top_logprobs", 0, kMaxTopLogprobs, 0));
  if (r.top_logprobs > 0 && !r.logprobs) throw bad_request("'top_logprobs' requires 'logprobs': true", "top_logprobs");
  r.sampling.logprobs = r.logprobs;
  r.sampling.top_logprobs = r.top_logprobs;

  // --- tools
  if (const Json* tools = field(body, "tools")) {
    if (!tools->is_array()) throw bad_request("'tools' must be an array", "tools");
    if (tools->size() > 512) throw bad_request("at most 512 tools are allowed", "tools");
    for (size_t i = 0; i < tools->size(); ++i) {
      const Json& t = (*tools)[i];
      const std::string w = "tools[" + std::to_string(i) + "]";
      if (!t.is_object()) throw bad_request(w + " must be an object", "tools");
      const Json* type = field(t, "type");
      if (type && (!type->is_string() || *type != "function")) throw bad_request(w + ": only type 'function' is supported", "tools");
      const Json* fn = field(t, "function");
      if (!fn || !fn->is_object()) throw bad_request(w + ": 'function' must be an object", "tools");
      const Json* name = field(*fn, "name");
      if (!name || !name->is_string() || name->get<std::string>().empty()) throw bad_request(w + ": 'function.name' must be a non-empty string", "tools");
      const std::string n = name->get<std::string>();
      if (n.find_first_of("\"<>\n") != std::string::npos) throw bad_request(w + ": invalid function name", "tools");
      if (const Json* p = field(*fn, "parameters"); p && !p->is_object()) throw bad_request(w + ": 'function.parameters' must be an object", "tools");
      r.tools.push_back(Json::object({{"type", "function"}, {"function", *fn}}));
    }
  }
  r.tool_choice = r.tools.empty() ? ToolChoice::None : ToolChoice::Auto;
  if (const Json* tc = field(body, "tool_choice")) {
    if (tc->is_string()) {
      const std::string s = tc->get<std::string>();
      if (s == "none") r.tool_choice = ToolChoice::None;
      else if (s == "auto") r.tool_choice = r.tools.empty() ? ToolChoice::None : ToolChoice::Auto;
      else if (s == "required") r.tool_choice = ToolChoice::Required;
      else throw bad_request("'tool_choice' must be none, auto, required or a named function", "tool_choice");
    } else if (tc->is_object()) {
      const Json* fn = field(*tc, "function");
      const Json* name = fn && fn->is_object() ? field(*fn, "name") : nullptr;
      if (!name || !name->is_string()) throw bad_request("'tool_choice.function.name' must be a string", "tool_choice");
      r.tool_choice = ToolChoice::Named;
      r.tool_name = name->get<std::string>();
      bool found = false;
      for (const Json& t : r.tools) found = found || t["function"]["name"] == r.tool_name;
      if (!found) throw bad_request("tool_choice names function '" + r.tool_name + "', which is not in 'tools'", "tool_choice");
    } else {
      throw bad_request("'tool_choice' must be a string or an object", "tool_choice");
    }
    if (r.tool_choice == ToolChoice::Required && r.tools.empty())
      throw bad_request("tool_choice 'required' needs at least one tool", "tool_choice");
  }

  // --- response_format
  Json prompt_format;  // what the encoder shows the model
  if (const Json* rf = field(body, "response_format")) {
    if (!rf->is_object()) throw bad_request("'response_format' must be an object", "response_format");
    const Json* type = field(*rf, "type");
    if (!type || !type->is_string()) throw bad_request("'response_format.type' must be a string", "response_format");
    if (*type == "json_object") {
      r.json = true;
      prompt_format = Json::object({{"type", "json_object"}});
    } else if (*type == "json_schema") {
      const Json* js = field(*rf, "json_schema");
      if (!js || !js->is_object()) throw bad_request("'response_format.json_schema' must be an object", "response_format");
      const Json* schema = field(*js, "schema");
      if (schema && !schema->is_object()) throw bad_request("'response_format.json_schema.schema' must be an object", "response_format");
      r.json = true;
      r.json_schema = schema ? *schema : Json();
      prompt_format = r.json_schema.is_null() ? Json::object({{"type", "json_object"}}) : r.json_schema;
    } else if (*type != "text") {
      throw bad_request("'response_format.type' must be text, json_object or json_schema", "response_format");
    }
    if (r.json && r.tool_choice != ToolChoice::None && r.tool_choice != ToolChoice::Auto)
      throw bad_request("response_format json cannot be combined with a forced tool_choice", "response_format");
  }

  // --- messages
  const Json* msgs = field(body, "messages");
  if (!msgs || !msgs->is_array() || msgs->empty()) throw bad_request("'messages' must be a non-empty array", "messages");
  if (msgs->size() > 100000) throw bad_request("too many messages", "messages");
  Json out = Json::array();
  for (size_t i = 0; i < msgs->size(); ++i) out.push_back(normalize_message((*msgs)[i], i, thinking));
  // Request-level tools and the response format go on a leading system message (vLLM's rule:
  // the first message if it is a system message, else a new empty one at index 0).
  const bool render_tools = !r.tools.empty() && r.tool_choice != ToolChoice::None;
  if (render_tools || !prompt_format.is_null()) {
    if (out[0]["role"] != "system") out.insert(out.begin(), Json::object({{"role", "system"}, {"content", ""}}));
    if (render_tools) out[0]["tools"] = r.tools;
    if (!prompt_format.is_null()) out[0]["response_format"] = prompt_format;
  }
  const Json& last = out.back();
  if (last["role"] == "assistant" && !last.contains("wo_eos"))
    throw bad_request("the last message must be a user or tool message (or an assistant message with prefix: true)", "messages");
  r.messages = std::move(out);

  if (r.json) {
    // Compile now so a bad schema is a 400 here, not a failure in the scheduler.
    try {
      auto table = std::make_shared<TokenTable>();
      JsonConstraint probe(table, r.json_schema);
    } catch (const ApiError&) {
      throw;
    } catch (const Error& e) {
      throw bad_request(e.what(), "response_format");
    }
  }
  return r;
}

void ToolCallMemory::remember(const std::string& id, Turn turn) {
  std::lock_guard lock(mu_);
  if (turns_.count(id) == 0) order_.push_back(id);
  turns_[id] = std::move(turn);
  while (order_.size() > max_) {
    turns_.erase(order_.front());
    order_.erase(order_.begin());
  }
}

bool ToolCallMemory::lookup(const std::string& id, Turn& out) const {
  std::lock_guard lock(mu_);
  auto it = turns_.find(id);
  if (it == turns_.end()) return false;
  out = it->second;
  return true;
}

Prompt build_chat_prompt(const ChatRequest& req, const Tokenizer& tok, const ToolCallMemory* memory) {
  Prompt p;
  try {
    p.text = chat::encode_messages(req.messages, req.encode);
  } catch (const chat::EncodeError& e) {
    throw bad_request(std::string("the messages cannot be rendered: ") + e.what(), "messages");
  }
  // Pieces of text and already-known token runs, in order.
  struct Piece {
    std::string text;
    const std::vector<int64_t>* tokens = nullptr;
  };
  std::vector<ToolCallMemory::Turn> turns;
  if (memory) {
    for (const Json& m : req.messages) {
      if (m["role"] != "assistant" || !m.contains("tool_calls")) continue;
      const Json& c0 = m["tool_calls"][0];
      if (!c0.contains("id")) continue;
      ToolCallMemory::Turn t;
      if (memory->lookup(c0["id"].get<std::string>(), t)) turns.push_back(std::move(t));
    }
  }
  std::vector<Piece> pieces;
  std::string rest = p.text;
  std::string rebuilt;
  for (const auto& t : turns) {
    const size_t at = rest.find(t.canonical);
    if (at == std::string::npos || t.canonical.empty()) continue;
    pieces.push_back(Piece{rest.substr(0, at)});
    pieces.push_back(Piece{t.raw, &t.tokens});
    rebuilt += rest.substr(0, at) + t.raw;
    rest = rest.substr(at + t.canonical.size());
  }
  pieces.push_back(Piece{rest});
  rebuilt += rest;
  p.text = rebuilt;
  try {
    for (const Piece& pc : pieces) {
      if (pc.tokens) {
        p.tokens.insert(p.tokens.end(), pc.tokens->begin(), pc.tokens->end());
      } else {
        std::vector<int32_t> ids = tok.encode(pc.text);
        p.tokens.insert(p.tokens.end(), ids.begin(), ids.end());
      }
    }
  } catch (const Error& e) {
    throw bad_request(std::string("the prompt cannot be tokenized: ") + e.what(), "messages");
  }
  return p;
}

JobSpec make_job_spec(const ChatRequest& req, const Prompt& prompt, const ServerInfo& info) {
  JobSpec j;
  j.prompt = prompt.tokens;
  const int64_t n = static_cast<int64_t>(prompt.tokens.size());
  if (n >= info.context)
    throw ApiError(400, "This model's maximum context length is " + std::to_string(info.context) + " tokens. However, you requested " +
                            std::to_string(n) + " tokens in the messages. Please reduce the length of the messages (or start dsv4 serve with a larger -c).",
                   "invalid_request_error", "messages", "context_length_exceeded");
  // A max_tokens beyond what is left of the context (or beyond --n-predict) is clamped, as
  // llama.cpp does: the answer ends with finish reason "length" instead of a 400.
  j.max_tokens = clamp_max_tokens(req.max_tokens, n, info);
  j.sampling = req.sampling;
  j.stop = req.stop;
  j.parse_chat = true;
  j.mode = req.encode.thinking_mode;
  j.want_logprobs = req.logprobs;
  j.json = req.json;
  j.json_schema = req.json_schema;
  if (req.tool_choice == ToolChoice::Required || req.tool_choice == ToolChoice::Named) {
    for (const Json& t : req.tools) {
      const Json& f = t["function"];
      const std::string name = f["name"].get<std::string>();
      if (req.tool_choice == ToolChoice::Named && name != req.tool_name) continue;
      j.forced_tools.push_back(ToolSchema{name, f.contains("parameters") ? f["parameters"] : Json()});
    }
  }
  j.complete_turn_for_cache = !req.tools.empty();
  return j;
}

}  // namespace dsv4::server
