#include "engine/tool_call_constraint.h"

#include <algorithm>

#include "base/error.h"
#include "text/chat_encoder.h"

namespace dsv4 {

namespace {

using json_py::Json;

std::string dsml(std::string_view tail) { return "<" + std::string(chat::kDsml) + std::string(tail); }
std::string dsml_close(std::string_view tail) { return "</" + std::string(chat::kDsml) + std::string(tail); }

}  // namespace

ToolCallConstraint::ToolCallConstraint(std::shared_ptr<const TokenTable> table, const Tokenizer& tok,
                                       const std::vector<ToolSchema>& tools, int max_string)
    : table_(std::move(table)) {
  if (tools.empty()) throw Error("ToolCallConstraint needs at least one tool");
  const std::string param_close = dsml_close("parameter>");
  const std::string call_close = "\n" + dsml_close("invoke>") + "\n" + dsml_close("tool_calls>");
  close_next_ = tok.encode(param_close + call_close);
  for (const ToolSchema& t : tools) {
    if (t.name.empty()) throw Error("ToolCallConstraint: a tool has no name");
    // The opening is encoded together with what may follow it (first parameter or the close):
    // the tokenizer merges across that boundary (">\n" + "\n" is one token).
    const std::string header = "\n\n" + dsml("tool_calls>") + "\n" + dsml("invoke name=\"") + t.name + "\">\n";
    Tool tool;
    tool.close_first = tok.encode(header + call_close);
    const Json& s = t.parameters;
    if (s.is_object() && s.contains("properties") && s["properties"].is_object()) {
      std::vector<std::string> required;
      if (s.contains("required") && s["required"].is_array())
        for (const Json& r : s["required"])
          if (r.is_string()) required.push_back(r.get<std::string>());
      const Json& props = s["properties"];
      for (auto it = props.begin(); it != props.end(); ++it) {
        Param p;
        p.name = it.key();
        p.schema = it.value();
        p.required = std::find(required.begin(), required.end(), p.name) != required.end();
        const Json& ps = p.schema;
        p.is_string = ps.is_object() && ps.contains("type") && ps["type"].is_string() && ps["type"].get<std::string>() == "string";
        p.max_len = max_string;
        if (p.is_string && ps.contains("maxLength") && ps["maxLength"].is_number_integer())
          p.max_len = static_cast<int>(std::clamp<int64_t>(ps["maxLength"].get<int64_t>(), 0, max_string));
        if (p.is_string && ps.contains("enum") && ps["enum"].is_array())
          for (const Json& v : ps["enum"])
            if (v.is_string() && v.get<std::string>().find('<') == std::string::npos) p.enum_values.push_back(v.get<std::string>());
        const std::string open =
            dsml("parameter name=\"") + p.name + "\" string=\"" + (p.is_string ? "true" : "false") + "\">";
        p.open_first = tok.encode(header + open);
        p.open_next = tok.encode(param_close + "\n" + open);
        tool.params.push_back(std::move(p));
      }
    }
    tools_.push_back(std::move(tool));
  }
  // The first choice: which tool, and its first parameter (or the close).
  std::vector<std::vector<int32_t>> options;
  for (size_t t = 0; t < tools_.size(); ++t) {
    tool_ = static_cast<int>(t);
    add_options(false, options);
  }
  tool_ = -1;
  choice_ = std::make_unique<ChoiceConstraint>(std::move(options));
}

ToolCallConstraint::~ToolCallConstraint() = default;

void ToolCallConstraint::add_options(bool after_value, std::vector<std::vector<int32_t>>& options) {
  const Tool& tool = tools_[static_cast<size_t>(tool_)];
  bool required_left = false;
  for (int i = after_value ? next_ : 0; i < static_cast<int>(tool.params.size()); ++i) {
    const Param& p = tool.params[static_cast<size_t>(i)];
    options.push_back(after_value ? p.open_next : p.open_first);
    option_tool_.push_back(tool_);
    option_param_.push_back(i);
    if (p.required) {
      required_left = true;
      break;
    }
  }
  if (!required_left) {
    options.push_back(after_value ? close_next_ : tool.close_first);
    option_tool_.push_back(tool_);
    option_param_.push_back(-1);
  }
}

void ToolCallConstraint::choice_done() {
  const size_t k = static_cast<size_t>(choice_->chosen());
  tool_ = option_tool_[k];
  const int p = option_param_[k];
  option_tool_.clear();
  option_param_.clear();
  choice_.reset();
  if (p < 0) {
    phase_ = Phase::End;
    return;
  }
  cur_ = p;
  next_ = p + 1;
  const Param& param = tools_[static_cast<size_t>(tool_)].params[static_cast<size_t>(p)];
  if (param.is_string) {
    phase_ = Phase::StringValue;
    value_.clear();
    utf8_ = 0;
  } else {
    phase_ = Phase::JsonValue;
    try {
      json_ = std::make_unique<JsonConstraint>(table_, param.schema.is_null() ? Json(true) : param.schema);
    } catch (const Error&) {
      json_ = std::make_unique<JsonConstraint>(table_, Json(true));  // a schema it cannot compile: any JSON value
    }
  }
  // What may follow the value: the next parameters' openers or the close.
  std::vector<std::vector<int32_t>> options;
  add_options(true, options);
  choice_ = std::make_unique<ChoiceConstraint>(std::move(options));
}

bool ToolCallConstraint::value_token_ok(int32_t token) const {
  if (token < 0 || static_cast<size_t>(token) >= table_->bytes.size()) return false;
  if (phase_ == Phase::JsonValue) return token != table_->eos && json_->allows(token);
  if (table_->special[static_cast<size_t>(token)]) return false;
  const std::string& b = table_->bytes[static_cast<size_t>(token)];
  if (b.empty() || b.find('<') != std::string::npos) return false;  // '<' would start the closing tag
  const Param& p = tools_[static_cast<size_t>(tool_)].params[static_cast<size_t>(cur_)];
  uint32_t u = utf8_;
  for (char ch : b)
    if (!utf8_step(u, static_cast<unsigned char>(ch))) return false;
  // Room for the rest of a character the token leaves open, so the value can always close.
  if (value_.size() + b.size() + static_cast<size_t>(utf8_pending(u)) > static_cast<size_t>(p.max_len)) return false;
  if (p.enum_values.empty()) return true;
  const std::string v = value_ + b;
  for (const std::string& e : p.enum_values)
    if (e.compare(0, v.size(), v) == 0 && e.size() >= v.size()) return true;
  return false;
}

bool ToolCallConstraint::value_complete() const {
  if (phase_ == Phase::JsonValue) return json_->done();
  const Param& p = tools_[static_cast<size_t>(tool_)].params[static_cast<size_t>(cur_)];
  if (utf8_ != 0) return false;  // inside a character
  return p.enum_values.empty() || std::find(p.enum_values.begin(), p.enum_values.end(), value_) != p.enum_values.end();
}

bool ToolCallConstraint::allows(int32_t token) const {
  switch (phase_) {
    case Phase::Opener:
      return choice_->allows(token);
    case Phase::StringValue:
    case Phase::JsonValue:
      return value_token_ok(token) || (choice_->allows(token) && value_complete());
    case Phase::End:
      return token == table_->eos;
  }
  return false;
}

void ToolCallConstraint::accept(int32_t token) {
  if (!allows(token)) throw Error("ToolCallConstraint: token " + std::to_string(token) + " is not allowed");
  switch (phase_) {
    case Phase::Opener:
      choice_->accept(token);
      if (choice_->done()) choice_done();
      return;
    case Phase::StringValue:
    case Phase::JsonValue:
      // A value token never starts with '<' outside a JSON string, a closing option always
      // does, so the two cannot both take a token.
      if (value_token_ok(token)) {
        if (phase_ == Phase::JsonValue) json_->accept(token);
        else {
          for (char ch : table_->bytes[static_cast<size_t>(token)]) utf8_step(utf8_, static_cast<unsigned char>(ch));
          value_ += table_->bytes[static_cast<size_t>(token)];
        }
        return;
      }
      json_.reset();
      phase_ = Phase::Opener;
      choice_->accept(token);
      if (choice_->done()) choice_done();
      return;
    case Phase::End:
      return;
  }
}

bool ToolCallConstraint::done() const { return phase_ == Phase::End; }

}  // namespace dsv4
