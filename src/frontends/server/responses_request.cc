#include "frontends/server/responses_request.h"

#include <cstring>

namespace dsv4::server {

namespace {

constexpr const char* kEncryptedPrefix = "dsv4r1:";
constexpr const char* kB64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Text of a message's content: a string or an array of text parts.
std::string content_text(const Json& c, const std::string& where) {
  if (c.is_string()) return c.get<std::string>();
  if (!c.is_array()) throw bad_request(where + ".content must be a string or an array of content parts", "input");
  std::string out;
  for (size_t k = 0; k < c.size(); ++k) {
    const Json& p = c[k];
    const std::string pw = where + ".content[" + std::to_string(k) + "]";
    if (!p.is_object()) throw bad_request(pw + " must be an object", "input");
    const std::string type = get_string(p, "type", "", "input");
    if (type == "input_text" || type == "output_text" || type == "text" || type == "summary_text" || type == "reasoning_text") {
      const Json* t = field(p, "text");
      if (!t || !t->is_string()) throw bad_request(pw + ": a " + type + " part needs a string 'text'", "input");
      out += t->get<std::string>();
    } else if (type == "refusal") {
      out += get_string(p, "refusal", "", "input");
    } else {
      throw bad_request(pw + ": content type '" + type + "' is not supported (text parts only)", "input");
    }
  }
  return out;
}

// Builds chat messages from input items, merging reasoning + function_call items (and an
// assistant message between them) into one assistant turn.
class Conversation {
 public:
  explicit Conversation(Json& out) : out_(out) {}
  void flush() {
    if (!open_) return;
    out_.push_back(std::move(asst_));
    open_ = false;
  }
  Json& assistant() {
    if (!open_) {
      asst_ = Json::object({{"role", "assistant"}, {"content", ""}, {"reasoning_content", ""}});
      open_ = true;
      has_reasoning_ = has_content_ = false;
    }
    return asst_;
  }
  void reasoning(const std::string& text) {
    if (open_ && (has_reasoning_ || has_content_ || asst_.contains("tool_calls"))) flush();
    assistant()["reasoning_content"] = assistant()["reasoning_content"].get<std::string>() + text;
    has_reasoning_ = true;
  }
  void assistant_text(const std::string& text) {
    if (open_ && (has_content_ || asst_.contains("tool_calls"))) flush();
    assistant()["content"] = text;
    has_content_ = true;
  }
  void call(Json c) {
    Json& a = assistant();
    if (!a.contains("tool_calls")) a["tool_calls"] = Json::array();
    a["tool_calls"].push_back(std::move(c));
  }
  void other(Json m) {
    flush();
    out_.push_back(std::move(m));
  }

 private:
  Json& out_;
  Json asst_;
  bool open_ = false, has_reasoning_ = false, has_content_ = false;
};

void add_input_items(const Json& input, Json& out) {
  Conversation conv(out);
  if (input.is_string()) {
    conv.other(Json::object({{"role", "user"}, {"content", input}}));
    return;
  }
  if (!input.is_array()) throw bad_request("'input' must be a string or an array of input items", "input");
  if (input.size() > 100000) throw bad_request("too many input items", "input");
  for (size_t i = 0; i < input.size(); ++i) {
    const Json& it = input[i];
    const std::string where = "input[" + std::to_string(i) + "]";
    if (!it.is_object()) throw bad_request(where + " must be an object", "input");
    std::string type = get_string(it, "type", "", "input");
    if (type.empty() && field(it, "role")) type = "message";  // EasyInputMessage
    if (type == "message") {
      std::string role = get_string(it, "role", "", "input");
      const Json* c = field(it, "content");
      if (!c) throw bad_request(where + ": 'content' is required", "input");
      const std::string text = content_text(*c, where);
      if (role == "developer") role = "system";
      if (role == "assistant") {
        conv.assistant_text(text);
      } else if (role == "user" || role == "system") {
        conv.other(Json::object({{"role", role}, {"content", text}}));
      } else {
        throw bad_request(where + ": unknown role '" + role + "' (expected user, system, developer or assistant)", "input");
      }
    } else if (type == "reasoning") {
      std::string text;
      if (const Json* enc = field(it, "encrypted_content")) {
        if (!enc->is_string()) throw bad_request(where + ": 'encrypted_content' must be a string", "input");
        text = decode_reasoning_content(enc->get<std::string>(), where);
      } else if (const Json* c = field(it, "content"); c && c->is_array() && !c->empty()) {
        text = content_text(*c, where);
      } else if (const Json* s = field(it, "summary")) {
        if (!s->is_array()) throw bad_request(where + ": 'summary' must be an array", "input");
        std::string joined;
        for (const Json& p : *s) {
          const std::string t = content_text(Json::array({p}), where + ".summary");
          joined += (joined.empty() ? "" : "\n\n") + t;
        }
        text = joined;
      }
      conv.reasoning(text);
    } else if (type == "function_call") {
      const std::string call_id = get_string(it, "call_id", "", "input");
      const std::string name = get_string(it, "name", "", "input");
      if (call_id.empty() || name.empty()) throw bad_request(where + ": a function_call needs 'call_id' and 'name'", "input");
      const Json* args = field(it, "arguments");
      if (args && !args->is_string()) throw bad_request(where + ": 'arguments' must be a JSON string", "input");
      conv.call(Json::object({{"id", call_id}, {"type", "function"},
                              {"function", Json::object({{"name", name}, {"arguments", args ? *args : Json("{}")}})}}));
    } else if (type == "function_call_output") {
      const std::string call_id = get_string(it, "call_id", "", "input");
      if (call_id.empty()) throw bad_request(where + ": a function_call_output needs 'call_id'", "input");
      const Json* o = field(it, "output");
      if (!o) throw bad_request(where + ": 'output' is required", "input");
      conv.other(Json::object({{"role", "tool"}, {"tool_call_id", call_id}, {"content", content_text(*o, where + ".output")}}));
    } else {
      throw bad_request(where + ": input item type '" + type +
                            "' is not supported (message, reasoning, function_call, function_call_output)", "input");
    }
  }
  conv.flush();
}

}  // namespace

std::string encode_reasoning_content(const std::string& s) {
  std::string out = kEncryptedPrefix;
  size_t i = 0;
  const auto* b = reinterpret_cast<const unsigned char*>(s.data());
  for (; i + 2 < s.size(); i += 3) {
    const uint32_t v = (uint32_t(b[i]) << 16) | (uint32_t(b[i + 1]) << 8) | b[i + 2];
    for (int k = 18; k >= 0; k -= 6) out += kB64[(v >> k) & 63];
  }
  if (i < s.size()) {
    uint32_t v = uint32_t(b[i]) << 16;
    if (i + 1 < s.size()) v |= uint32_t(b[i + 1]) << 8;
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += i + 1 < s.size() ? kB64[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string decode_reasoning_content(const std::string& enc, const std::string& where) {
  const std::string prefix = kEncryptedPrefix;
  auto fail = [&] { return bad_request(where + ": 'encrypted_content' was not produced by this server", "input"); };
  if (enc.compare(0, prefix.size(), prefix) != 0) throw fail();
  const std::string s = enc.substr(prefix.size());
  if (s.size() % 4 != 0) throw fail();
  std::string out;
  for (size_t i = 0; i < s.size(); i += 4) {
    uint32_t v = 0;
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s[i + static_cast<size_t>(k)];
      uint32_t d = 0;
      if (c == '=') {
        if (i + 4 != s.size() || k < 2) throw fail();
        ++pad;
      } else {
        if (pad) throw fail();
        const char* p = std::strchr(kB64, c);
        if (!p || c == 0) throw fail();
        d = static_cast<uint32_t>(p - kB64);
      }
      v = (v << 6) | d;
    }
    out += static_cast<char>((v >> 16) & 255);
    if (pad < 2) out += static_cast<char>((v >> 8) & 255);
    if (pad < 1) out += static_cast<char>(v & 255);
  }
  return out;
}

ResponsesRequest parse_responses_request(const Json& body, ResponsesStore& store) {
  if (!body.is_object()) throw bad_request("the request body must be a JSON object");
  ResponsesRequest r;
  Json& o = r.chat_body = Json::object();
  for (const char* k : {"model", "temperature", "top_p", "seed", "stream"})
    if (const Json* v = field(body, k)) o[k] = *v;
  r.stream = get_bool(body, "stream", false);
  r.store = get_bool(body, "store", true);
  if (get_bool(body, "background", false)) throw bad_request("'background' responses are not supported", "background");
  if (const Json* v = field(body, "max_output_tokens")) o["max_tokens"] = *v;
  get_int(body, "max_output_tokens", 1, int64_t(1) << 40, -1);
  const bool parallel = get_bool(body, "parallel_tool_calls", true);
  if (const Json* inc = field(body, "include")) {
    if (!inc->is_array()) throw bad_request("'include' must be an array of strings", "include");
    for (const Json& x : *inc) {
      if (!x.is_string()) throw bad_request("'include' must be an array of strings", "include");
      if (x == "reasoning.encrypted_content") r.include_encrypted_reasoning = true;
    }
  }
  const std::string truncation = get_string(body, "truncation", "disabled");
  if (truncation != "disabled" && truncation != "auto") throw bad_request("'truncation' must be auto or disabled", "truncation");
  if (const Json* m = field(body, "metadata")) {
    if (!m->is_object() || m->size() > 16) throw bad_request("'metadata' must be an object of at most 16 string values", "metadata");
    for (const auto& [k, v] : m->items())
      if (!v.is_string()) throw bad_request("'metadata." + k + "' must be a string", "metadata");
  }
  const std::string user = get_string(body, "user", "");

  // --- reasoning
  Json reasoning_echo = Json::object({{"effort", nullptr}, {"summary", nullptr}});
  if (const Json* re = field(body, "reasoning")) {
    if (!re->is_object()) throw bad_request("'reasoning' must be an object", "reasoning");
    const std::string effort = get_string(*re, "effort", "", "reasoning");
    if (effort == "none" || effort == "minimal" || effort == "low" || effort == "medium") {
      o["thinking"] = Json::object({{"type", "disabled"}});
    } else if (effort == "high") {
      o["thinking"] = Json::object({{"type", "enabled"}});
    } else if (effort == "xhigh" || effort == "max") {
      o["thinking"] = Json::object({{"type", "enabled"}});
      o["reasoning_effort"] = "max";
    } else if (!effort.empty()) {
      throw bad_request("'reasoning.effort' must be one of none, minimal, low, medium, high, xhigh, max", "reasoning");
    }
    if (!effort.empty()) reasoning_echo["effort"] = effort;
    if (const Json* s = field(*re, "summary")) reasoning_echo["summary"] = *s;
  }

  // --- tools
  Json tools_echo = Json::array();
  if (const Json* tools = field(body, "tools")) {
    if (!tools->is_array()) throw bad_request("'tools' must be an array", "tools");
    Json ct = Json::array();
    for (size_t i = 0; i < tools->size(); ++i) {
      const Json& t = (*tools)[i];
      const std::string w = "tools[" + std::to_string(i) + "]";
      if (!t.is_object()) throw bad_request(w + " must be an object", "tools");
      const std::string type = get_string(t, "type", "", "tools");
      if (type != "function")
        throw bad_request(w + ": tool type '" + type + "' is not supported (only function tools)", "tools");
      const Json* name = field(t, "name");
      if (!name || !name->is_string()) throw bad_request(w + ": a function tool needs a string 'name'", "tools");
      Json fn = Json::object({{"name", *name}});
      if (const Json* d = field(t, "description")) fn["description"] = *d;
      fn["parameters"] = field(t, "parameters") ? t["parameters"] : Json::object({{"type", "object"}, {"properties", Json::object()}});
      ct.push_back(Json::object({{"type", "function"}, {"function", std::move(fn)}}));
      tools_echo.push_back(t);
    }
    o["tools"] = std::move(ct);
  }
  Json tool_choice_echo = "auto";
  if (const Json* tc = field(body, "tool_choice")) {
    if (tc->is_string()) {
      if (*tc != "none" && *tc != "auto" && *tc != "required") throw bad_request("'tool_choice' must be none, auto, required or a function", "tool_choice");
      o["tool_choice"] = *tc;
    } else if (tc->is_object() && get_string(*tc, "type", "", "tool_choice") == "function") {
      const std::string name = get_string(*tc, "name", "", "tool_choice");
      if (name.empty()) throw bad_request("'tool_choice.name' must be a string", "tool_choice");
      o["tool_choice"] = Json::object({{"type", "function"}, {"function", Json::object({{"name", name}})}});
    } else {
      throw bad_request("'tool_choice' must be none, auto, required or {\"type\": \"function\", \"name\": ...}", "tool_choice");
    }
    tool_choice_echo = *tc;
  }

  // --- text.format
  Json text_echo = Json::object({{"format", Json::object({{"type", "text"}})}});
  if (const Json* tx = field(body, "text")) {
    if (!tx->is_object()) throw bad_request("'text' must be an object", "text");
    if (const Json* f = field(*tx, "format")) {
      if (!f->is_object()) throw bad_request("'text.format' must be an object", "text");
      const std::string type = get_string(*f, "type", "", "text");
      if (type == "json_schema") {
        const Json* schema = field(*f, "schema");
        if (!schema || !schema->is_object()) throw bad_request("'text.format.schema' must be an object", "text");
        o["response_format"] = Json::object({{"type", "json_schema"},
                                             {"json_schema", Json::object({{"name", get_string(*f, "name", "response", "text")}, {"schema", *schema}})}});
      } else if (type == "json_object") {
        o["response_format"] = Json::object({{"type", "json_object"}});
      } else if (type != "text") {
        throw bad_request("'text.format.type' must be text, json_object or json_schema", "text");
      }
      text_echo["format"] = *f;
    }
  }

  // --- messages: [instructions] + previous conversation + input
  Json instructions = nullptr;
  if (const Json* ins = field(body, "instructions")) {
    if (!ins->is_string()) throw bad_request("'instructions' must be a string", "instructions");
    instructions = *ins;
  }
  r.conversation = Json::array();
  const std::string prev = get_string(body, "previous_response_id", "");
  if (!prev.empty()) {
    std::optional<StoredResponse> s = store.get(prev);
    if (!s) throw ApiError(404, "Previous response with id '" + prev + "' not found.", "invalid_request_error", "previous_response_id",
                           "previous_response_not_found");
    r.conversation = s->messages;
  }
  const Json* input = field(body, "input");
  if (!input) throw bad_request("'input' is required", "input");
  add_input_items(*input, r.conversation);
  Json msgs = Json::array();
  if (instructions.is_string()) msgs.push_back(Json::object({{"role", "system"}, {"content", instructions}}));
  for (const Json& m : r.conversation) msgs.push_back(m);
  o["messages"] = std::move(msgs);

  r.echo = Json::object({{"instructions", instructions},
                         {"max_output_tokens", field(body, "max_output_tokens") ? body["max_output_tokens"] : Json(nullptr)},
                         {"metadata", field(body, "metadata") ? body["metadata"] : Json::object()},
                         {"parallel_tool_calls", parallel},
                         {"previous_response_id", prev.empty() ? Json(nullptr) : Json(prev)},
                         {"reasoning", reasoning_echo},
                         {"store", r.store},
                         {"temperature", field(body, "temperature") ? body["temperature"] : Json(1.0)},
                         {"text", text_echo},
                         {"tool_choice", tool_choice_echo},
                         {"tools", tools_echo},
                         {"top_p", field(body, "top_p") ? body["top_p"] : Json(1.0)},
                         {"truncation", truncation},
                         {"user", user.empty() ? Json(nullptr) : Json(user)}});
  return r;
}

}  // namespace dsv4::server
