// Port of encoding_dsv4.py's encode_messages(). The structure follows the reference
// function by function (merge -> sort -> drop -> render) because byte-exactness depends on
// its quirks: which messages are merged, the index arithmetic of the drop branch, the
// truthiness tests, and where each assertion fires. Python exceptions map to EncodeError
// with the same exception kind.
#include "text/chat_encoder.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace dsv4::chat {

namespace {

using json_py::truthy;

const Json& null_json() {
  static const Json n = nullptr;
  return n;
}

[[noreturn]] void raise(const char* kind, const std::string& message) { throw EncodeError(kind, message); }

// Python dict.get(key) on a message: None when absent.
const Json& get(const Json& m, const char* key) {
  auto it = m.find(key);
  return it == m.end() ? null_json() : *it;
}

// Python dict.get(key, default).
Json get_or(const Json& m, const char* key, Json def) {
  auto it = m.find(key);
  return it == m.end() ? def : *it;
}

bool is(const Json& v, std::string_view s) { return v.is_string() && v.get_ref<const std::string&>() == s; }

// `x.get(...)` on something that is not a dict raises AttributeError in the reference.
void require_dict(const Json& v, const char* what) {
  if (!v.is_object()) raise("AttributeError", "'" + json_py::py_type_name(v) + "' object has no attribute 'get' (" + what + ")");
}

// `v in some_set` / `d[v]` need a hashable value: lists and dicts raise TypeError.
void require_hashable(const Json& v, const char* what) {
  if (v.is_array() || v.is_object()) raise("TypeError", "unhashable type: '" + json_py::py_type_name(v) + "' (" + what + ")");
}

// `x[key]` on a dict: KeyError when absent; TypeError on non-dicts.
const Json& index_key(const Json& v, const char* key) {
  if (!v.is_object()) raise("TypeError", "'" + json_py::py_type_name(v) + "' object is not subscriptable by \"" + key + "\"");
  auto it = v.find(key);
  if (it == v.end()) raise("KeyError", std::string("'") + key + "'");
  return *it;
}

// Iterating a value as the reference's list comprehensions do. A dict iterates its keys
// (strings), which then fail on the next subscript; model that by yielding the keys.
std::vector<Json> iterate(const Json& v, const char* what) {
  std::vector<Json> out;
  if (v.is_array()) {
    for (const auto& e : v) out.push_back(e);
  } else if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it) out.emplace_back(it.key());
  } else if (v.is_string()) {
    // A str iterates its characters; each is a str, and fails on the next use.
    out.emplace_back(v);
  } else {
    raise("TypeError", "'" + json_py::py_type_name(v) + "' object is not iterable (" + what + ")");
  }
  return out;
}

// Python `content or ""` followed by str.format: str() of a truthy value.
std::string or_empty(const Json& v, const char* what) { return truthy(v) ? json_py::py_str(v, what) : std::string(); }

// "\n\n".join(parts): every part must be a str.
std::string join_strs(const std::vector<Json>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (!parts[i].is_string())
      raise("TypeError", "sequence item " + std::to_string(i) + ": expected str instance, " +
                             json_py::py_type_name(parts[i]) + " found");
    if (i) out += sep;
    out += parts[i].get_ref<const std::string&>();
  }
  return out;
}

std::string cat(std::initializer_list<std::string_view> parts) {
  std::string s;
  for (auto p : parts) s += p;
  return s;
}

const std::string& tools_template_head() {
  static const std::string s = cat({
      "## Tools\n\nYou have access to a set of tools to help answer the user's question. You can invoke tools by "
      "writing a \"<",
      kDsml, "tool_calls>\" block like the following:\n\n<", kDsml, "tool_calls>\n<", kDsml,
      "invoke name=\"$TOOL_NAME\">\n<", kDsml, "parameter name=\"$PARAMETER_NAME\" string=\"true|false\">$PARAMETER_VALUE</",
      kDsml, "parameter>\n...\n</", kDsml, "invoke>\n<", kDsml, "invoke name=\"$TOOL_NAME2\">\n...\n</", kDsml,
      "invoke>\n</", kDsml,
      "tool_calls>\n\nString parameters should be specified as is and set `string=\"true\"`. For all other types "
      "(numbers, booleans, arrays, objects), pass the value in JSON format and set `string=\"false\"`.\n\n"
      "If thinking_mode is enabled (triggered by ",
      kThinkStart, "), you MUST output your complete reasoning inside ", kThinkStart, "...", kThinkEnd,
      " BEFORE any tool calls or final response.\n\nOtherwise, output directly after ", kThinkEnd,
      " with tool calls or final response.\n\n### Available Tool Schemas\n\n"});
  return s;
}

constexpr std::string_view kToolsTemplateTail =
    "\n\nYou MUST strictly follow the above defined tool name and parameter schemas to invoke tool calls.\n";
constexpr std::string_view kResponseFormatHead =
    "## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n";

constexpr std::string_view kEffortPreviewMax =
    "Reasoning Effort: Absolute maximum with no shortcuts permitted.\n"
    "You MUST be very thorough in your thinking and comprehensively decompose the problem to resolve the root cause, "
    "rigorously stress-testing your logic against all potential paths, edge cases, and adversarial scenarios.\n"
    "Explicitly write out your entire deliberation process, documenting every intermediate step, considered "
    "alternative, and rejected hypothesis to ensure absolutely no assumption is left unchecked.\n\n";

constexpr std::string_view kEffort0731Max =
    "Reasoning Effort: Beyond maximum — exhaustive, relentless, and uncompromising.\n"
    "You MUST reason with the utmost depth and rigor, leaving absolutely nothing to chance: exhaustively decompose "
    "the problem into its most fundamental components, trace every causal chain to its root, and resolve the "
    "underlying cause rather than any surface symptom.\n"
    "Do not stop reasoning until you have independently verified the solution from multiple angles and are certain "
    "that no assumption remains unchecked and no error remains undiscovered.\n\n";

std::string render_tools(const std::vector<Json>& functions) {
  std::string s = tools_template_head();
  for (size_t i = 0; i < functions.size(); ++i) {
    if (i) s += '\n';
    s += json_py::dumps(functions[i]);
  }
  s += kToolsTemplateTail;
  return s;
}

struct ToolCall {
  Json name;
  Json arguments;
};

std::string encode_arguments_to_dsml(const ToolCall& tc, ObjectArguments mode) {
  Json args;
  if (tc.arguments.is_string()) {
    try {
      args = json_py::loads(tc.arguments.get_ref<const std::string&>());
    } catch (const json_py::ParseError&) {
      args = Json::object({{"arguments", tc.arguments}});
    }
  } else if (mode == ObjectArguments::Natural && tc.arguments.is_object()) {
    args = tc.arguments;
  } else {
    // json.loads(non-str) raises TypeError inside the reference's try: same fallback.
    args = Json::object({{"arguments", tc.arguments}});
  }
  if (!args.is_object()) raise("AttributeError", "'" + json_py::py_type_name(args) + "' object has no attribute 'items'");
  std::string out;
  bool first = true;
  for (auto it = args.begin(); it != args.end(); ++it) {
    if (!first) out += '\n';
    first = false;
    bool is_str = it.value().is_string();
    out += cat({"<", kDsml, "parameter name=\"", it.key(), "\" string=\"", is_str ? "true" : "false", "\">"});
    out += is_str ? it.value().get<std::string>() : json_py::dumps(it.value());
    out += cat({"</", kDsml, "parameter>"});
  }
  return out;
}

int find_last_user_index(const std::vector<Json>& messages) {
  for (int i = static_cast<int>(messages.size()) - 1; i >= 0; --i) {
    const Json& r = get(messages[i], "role");
    if (is(r, "user") || is(r, "developer")) return i;
  }
  return -1;
}

std::vector<Json> merge_tool_messages(const std::vector<Json>& messages) {
  std::vector<Json> merged;
  for (const Json& msg : messages) {
    require_dict(msg, "message");
    const Json& role = get(msg, "role");
    auto last_is_user_with_blocks = [&] {
      return !merged.empty() && is(get(merged.back(), "role"), "user") && merged.back().contains("content_blocks");
    };
    if (is(role, "tool")) {
      Json block = Json::object({{"type", "tool_result"},
                                 {"tool_use_id", get_or(msg, "tool_call_id", "")},
                                 {"content", get_or(msg, "content", "")}});
      if (last_is_user_with_blocks()) {
        merged.back()["content_blocks"].push_back(std::move(block));
      } else {
        merged.push_back(Json::object({{"role", "user"}, {"content_blocks", Json::array({std::move(block)})}}));
      }
    } else if (is(role, "user")) {
      Json text_block = Json::object({{"type", "text"}, {"text", get_or(msg, "content", "")}});
      if (last_is_user_with_blocks() && get(merged.back(), "task").is_null()) {
        merged.back()["content_blocks"].push_back(std::move(text_block));
      } else {
        Json m = Json::object({{"role", "user"},
                               {"content", get_or(msg, "content", "")},
                               {"content_blocks", Json::array({std::move(text_block)})}});
        for (const char* key : {"task", "wo_eos", "mask"})
          if (msg.contains(key)) m[key] = msg.at(key);
        merged.push_back(std::move(m));
      }
    } else {
      merged.push_back(msg);
    }
  }
  return merged;
}

void sort_tool_results_by_call_order(std::vector<Json>& messages) {
  // id -> position in the latest assistant's tool_calls (a Python dict: later ids overwrite).
  std::vector<std::pair<Json, int>> order;
  auto lookup = [&](const Json& id) -> int {
    require_hashable(id, "tool_use_id");
    for (const auto& [k, v] : order)
      if (k == id) return v;
    return 0;  // unknown ids sort as position 0 (stable)
  };
  for (Json& msg : messages) {
    require_dict(msg, "message");
    const Json& role = get(msg, "role");
    if (is(role, "assistant") && truthy(get(msg, "tool_calls"))) {
      order.clear();
      int idx = 0;
      for (const Json& tc : iterate(msg["tool_calls"], "tool_calls")) {
        require_dict(tc, "tool call");
        Json id = get(tc, "id");
        if (!truthy(id)) {
          Json fn = get_or(tc, "function", Json::object());
          require_dict(fn, "tool call function");
          id = get_or(fn, "id", "");
        }
        if (truthy(id)) {
          require_hashable(id, "tool call id");
          auto it = std::find_if(order.begin(), order.end(), [&](const auto& p) { return p.first == id; });
          if (it != order.end()) it->second = idx;
          else order.emplace_back(id, idx);
        }
        ++idx;
      }
    } else if (is(role, "user") && truthy(get(msg, "content_blocks"))) {
      std::vector<Json> blocks = iterate(msg["content_blocks"], "content_blocks");
      std::vector<Json> tool_blocks;
      for (const Json& b : blocks) {
        require_dict(b, "content block");
        if (is(get(b, "type"), "tool_result")) tool_blocks.push_back(b);
      }
      if (tool_blocks.size() > 1 && !order.empty()) {
        std::vector<int> keys;
        for (const Json& b : tool_blocks) keys.push_back(lookup(get_or(b, "tool_use_id", "")));
        std::vector<size_t> perm(tool_blocks.size());
        for (size_t i = 0; i < perm.size(); ++i) perm[i] = i;
        std::stable_sort(perm.begin(), perm.end(), [&](size_t a, size_t b) { return keys[a] < keys[b]; });
        size_t k = 0;
        Json new_blocks = Json::array();
        for (const Json& b : blocks) {
          if (is(get(b, "type"), "tool_result")) new_blocks.push_back(tool_blocks[perm[k++]]);
          else new_blocks.push_back(b);
        }
        msg["content_blocks"] = std::move(new_blocks);
      }
    }
  }
}

std::vector<Json> drop_thinking_messages(const std::vector<Json>& messages) {
  int last_user = find_last_user_index(messages);
  std::vector<Json> result;
  for (int idx = 0; idx < static_cast<int>(messages.size()); ++idx) {
    const Json& msg = messages[idx];
    const Json& role = get(msg, "role");
    require_hashable(role, "role");
    bool keep_role = is(role, "user") || is(role, "system") || is(role, "tool") || is(role, "latest_reminder") ||
                     is(role, "direct_search_results");
    if (keep_role || idx >= last_user) {
      result.push_back(msg);
    } else if (is(role, "assistant")) {
      Json m = msg;
      m.erase("reasoning_content");
      result.push_back(std::move(m));
    }
    // developer and any other role before the last user message are dropped silently
  }
  return result;
}

struct RenderCtx {
  ThinkingMode mode;
  bool drop_thinking;
  const std::optional<std::string>* effort;
  EffortTable table;
  ObjectArguments object_arguments;
};

std::string render_message(int index, const std::vector<Json>& messages, const RenderCtx& c) {
  const bool thinking = c.mode == ThinkingMode::Thinking;
  std::string prompt;
  const Json& msg = messages[index];
  const int last_user = find_last_user_index(messages);

  const Json& role = get(msg, "role");
  const Json& content = get(msg, "content");
  const Json& tools_v = get(msg, "tools");
  const Json& response_format = get(msg, "response_format");
  const Json& tool_calls_v = get(msg, "tool_calls");
  const Json& reasoning_content = get(msg, "reasoning_content");
  const bool wo_eos = truthy(get_or(msg, "wo_eos", false));

  std::vector<Json> tools;
  if (truthy(tools_v))
    for (const Json& t : iterate(tools_v, "tools")) tools.push_back(index_key(t, "function"));
  std::vector<ToolCall> tool_calls;
  if (truthy(tool_calls_v)) {
    for (const Json& tc : iterate(tool_calls_v, "tool_calls")) {
      const Json& fn = index_key(tc, "function");
      tool_calls.push_back({index_key(fn, "name"), index_key(fn, "arguments")});
    }
  }

  // Reasoning-effort prefix: only the first rendered message, only in thinking mode.
  std::string prefix = effort_prefix(c.table, *c.effort);
  if (index == 0 && thinking) prompt += prefix;

  if (is(role, "system")) {
    prompt += or_empty(content, "system content");
    if (!tools.empty()) prompt += "\n\n" + render_tools(tools);
    if (truthy(response_format)) prompt += cat({"\n\n", kResponseFormatHead, json_py::dumps(response_format)});
  } else if (is(role, "developer")) {
    if (!truthy(content)) raise("AssertionError", "Invalid message for role `developer`: " + json_py::dumps(msg));
    if (!content.is_string())
      raise("TypeError", "can only concatenate str (not \"" + json_py::py_type_name(content) + "\") to str");
    prompt += kUser;
    prompt += content.get_ref<const std::string&>();
    if (!tools.empty()) prompt += "\n\n" + render_tools(tools);
    if (truthy(response_format)) prompt += cat({"\n\n", kResponseFormatHead, json_py::dumps(response_format)});
  } else if (is(role, "user")) {
    prompt += kUser;
    const Json& blocks = get(msg, "content_blocks");
    if (truthy(blocks)) {
      std::vector<Json> parts;
      for (const Json& block : iterate(blocks, "content_blocks")) {
        require_dict(block, "content block");
        const Json& type = get(block, "type");
        if (is(type, "text")) {
          parts.push_back(get_or(block, "text", ""));
        } else if (is(type, "tool_result")) {
          Json tool_content = get_or(block, "content", "");
          if (tool_content.is_array()) {
            std::vector<Json> text_parts;
            for (const Json& b : tool_content) {
              require_dict(b, "tool result part");
              if (is(get(b, "type"), "text")) text_parts.push_back(get_or(b, "text", ""));
              else text_parts.emplace_back("[Unsupported " + json_py::py_str(get(b, "type"), "part type") + "]");
            }
            tool_content = join_strs(text_parts, "\n\n");
          }
          parts.emplace_back("<tool_result>" + json_py::py_str(tool_content, "tool result content") + "</tool_result>");
        } else {
          parts.emplace_back("[Unsupported " + json_py::py_str(type, "block type") + "]");
        }
      }
      prompt += join_strs(parts, "\n\n");
    } else if (truthy(content)) {
      if (!content.is_string())
        raise("TypeError", "can only concatenate str (not \"" + json_py::py_type_name(content) + "\") to str");
      prompt += content.get_ref<const std::string&>();
    }
  } else if (is(role, "latest_reminder")) {
    prompt += kLatestReminder;
    prompt += json_py::py_str(content, "latest_reminder content");  // None renders "None", as in the reference
  } else if (is(role, "tool")) {
    raise("NotImplementedError",
          "deepseek_v4 merges tool messages into user; please preprocess with merge_tool_messages()");
  } else if (is(role, "assistant")) {
    std::string tc_content;
    if (!tool_calls.empty()) {
      tc_content = cat({"\n\n<", kDsml, "tool_calls>\n"});
      for (size_t i = 0; i < tool_calls.size(); ++i) {
        if (i) tc_content += '\n';
        tc_content += cat({"<", kDsml, "invoke name=\""});
        tc_content += json_py::py_str(tool_calls[i].name, "tool call name");
        tc_content += "\">\n";
        tc_content += encode_arguments_to_dsml(tool_calls[i], c.object_arguments);
        tc_content += cat({"\n</", kDsml, "invoke>"});
      }
      tc_content += cat({"\n</", kDsml, "tool_calls>"});
    }
    std::string summary = or_empty(content, "assistant content");
    std::string rc = or_empty(reasoning_content, "reasoning_content");
    // An assistant message right after a task message is the task's output: no thinking part.
    const bool prev_has_task = index - 1 >= 0 && !get(messages[index - 1], "task").is_null();
    std::string thinking_part;
    if (thinking && !prev_has_task && (!c.drop_thinking || index > last_user)) thinking_part = rc + std::string(kThinkEnd);
    prompt += thinking_part + summary + tc_content;
    if (!wo_eos) prompt += kEos;
  } else {
    raise("NotImplementedError", "Unknown role: " + (role.is_string() ? role.get<std::string>() : json_py::dumps(role)));
  }

  // Transition: only when the next message is an assistant / latest_reminder, or at the end.
  if (index + 1 < static_cast<int>(messages.size())) {
    const Json& next_role = get(messages[index + 1], "role");
    if (!is(next_role, "assistant") && !is(next_role, "latest_reminder")) return prompt;
  }
  const Json& task = get(msg, "task");
  if (!task.is_null()) {
    require_hashable(task, "task");
    static const std::pair<const char*, std::string_view> kTasks[] = {
        {"action", "<｜action｜>"}, {"query", "<｜query｜>"}, {"authority", "<｜authority｜>"},
        {"domain", "<｜domain｜>"}, {"title", "<｜title｜>"},   {"read_url", "<｜read_url｜>"}};
    const std::string_view* tok = nullptr;
    for (const auto& [name, t] : kTasks)
      if (is(task, name)) tok = &t;
    if (!tok)
      raise("AssertionError", "Invalid task: '" + json_py::py_str(task, "task") +
                                  "'. Valid tasks are: action, query, authority, domain, title, read_url");
    if (!is(task, "action")) {
      prompt += *tok;
    } else {
      prompt += kAssistant;
      prompt += thinking ? kThinkStart : kThinkEnd;
      prompt += *tok;
    }
  } else if (is(role, "user") || is(role, "developer")) {
    prompt += kAssistant;
    if ((!c.drop_thinking && thinking) || (c.drop_thinking && thinking && index >= last_user)) prompt += kThinkStart;
    else prompt += kThinkEnd;
  }
  return prompt;
}

std::vector<Json> as_list(const Json& v, const char* what) {
  if (!v.is_array()) raise("TypeError", std::string(what) + " must be a list, not " + json_py::py_type_name(v));
  return std::vector<Json>(v.begin(), v.end());
}

}  // namespace

ThinkingMode parse_thinking_mode(std::string_view s) {
  if (s == "chat") return ThinkingMode::Chat;
  if (s == "thinking") return ThinkingMode::Thinking;
  throw EncodeError("AssertionError", "Invalid thinking_mode `" + std::string(s) + "` (expected chat or thinking)");
}

std::string effort_prefix(EffortTable table, const std::optional<std::string>& effort) {
  if (table == EffortTable::V4Preview) {
    if (!effort) return {};
    if (*effort == "high") return {};
    if (*effort == "max") return std::string(kEffortPreviewMax);
    throw EncodeError("AssertionError", "Invalid reasoning effort: " + *effort);
  }
  // 0731: `reasoning_effort or "low"`, so an empty string also means low.
  std::string e = effort && !effort->empty() ? *effort : "low";
  if (e == "low") return {};
  if (e == "high") return std::string(kEffortPreviewMax);
  if (e == "max") return std::string(kEffort0731Max);
  throw EncodeError("AssertionError", "Invalid reasoning effort: " + e + ", expected one of ['low', 'high', 'max']");
}

std::string encode_messages(const Json& messages_in, const EncodeOptions& o) {
  std::vector<Json> raw_messages = as_list(messages_in, "messages");
  // `context if context else []`: any falsy context is no context.
  std::vector<Json> raw_context;
  if (truthy(o.context)) raw_context = as_list(o.context, "context");

  std::vector<Json> messages = merge_tool_messages(raw_messages);
  {
    // The reference sorts `context + messages` (raw context, merged messages) so that the
    // last tool-call order seen in the context also orders the first results in messages.
    std::vector<Json> all = raw_context;
    all.insert(all.end(), messages.begin(), messages.end());
    sort_tool_results_by_call_order(all);
    messages.assign(all.begin() + static_cast<std::ptrdiff_t>(raw_context.size()), all.end());
  }
  std::vector<Json> context;
  if (!raw_context.empty()) {
    context = merge_tool_messages(raw_context);
    sort_tool_results_by_call_order(context);
  }
  std::vector<Json> full = context;
  full.insert(full.end(), messages.begin(), messages.end());

  std::string prompt = o.add_default_bos_token && context.empty() ? std::string(kBos) : std::string();

  bool effective_drop = o.drop_thinking;
  for (const Json& m : full)
    if (truthy(get(m, "tools"))) effective_drop = false;

  int num_to_render, context_len;
  if (o.thinking_mode == ThinkingMode::Thinking && effective_drop) {
    full = drop_thinking_messages(full);
    // Reference arithmetic, kept as is: the context is dropped on its own, which can
    // disagree with the combined drop when the context has developer messages.
    num_to_render = static_cast<int>(full.size()) - static_cast<int>(drop_thinking_messages(context).size());
    context_len = static_cast<int>(full.size()) - num_to_render;
  } else {
    num_to_render = static_cast<int>(messages.size());
    context_len = static_cast<int>(context.size());
  }

  RenderCtx ctx{o.thinking_mode, effective_drop, &o.reasoning_effort, o.effort_table, o.object_arguments};
  for (int idx = 0; idx < num_to_render; ++idx) prompt += render_message(idx + context_len, full, ctx);
  return prompt;
}

EncodeOptions options_from_json(const Json& j) {
  EncodeOptions o;
  if (j.is_null()) throw Error("options: thinking_mode is required (\"chat\" or \"thinking\")");
  if (!j.is_object()) throw Error("options must be a JSON object");
  bool have_mode = false;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const Json& v = it.value();
    if (k == "thinking_mode") {
      if (!v.is_string()) throw EncodeError("AssertionError", "Invalid thinking_mode `" + json_py::dumps(v) + "`");
      o.thinking_mode = parse_thinking_mode(v.get<std::string>());
      have_mode = true;
    } else if (k == "reasoning_effort") {
      if (v.is_null()) o.reasoning_effort.reset();
      else if (v.is_string()) o.reasoning_effort = v.get<std::string>();
      else throw EncodeError("AssertionError", "Invalid reasoning effort: " + json_py::dumps(v));
    } else if (k == "drop_thinking") {
      o.drop_thinking = truthy(v);
    } else if (k == "add_default_bos_token") {
      o.add_default_bos_token = truthy(v);
    } else if (k == "context") {
      o.context = v;
    } else if (k == "effort_table") {  // dsv4 extension: which checkpoint's effort prefixes
      if (is(v, "v4-preview")) o.effort_table = EffortTable::V4Preview;
      else if (is(v, "v4-0731")) o.effort_table = EffortTable::V4_0731;
      else throw Error("options.effort_table must be \"v4-preview\" or \"v4-0731\"");
    } else if (k == "object_arguments") {  // dsv4 extension: see ObjectArguments
      if (is(v, "reference")) o.object_arguments = ObjectArguments::Reference;
      else if (is(v, "natural")) o.object_arguments = ObjectArguments::Natural;
      else throw Error("options.object_arguments must be \"reference\" or \"natural\"");
    } else {
      throw Error("options: unknown key \"" + k + "\"");
    }
  }
  if (!have_mode) throw Error("options: thinking_mode is required (\"chat\" or \"thinking\")");
  return o;
}

}  // namespace dsv4::chat
