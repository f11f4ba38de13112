// Graders of docs/tasks-format.md: exact, numeric, regex (PCRE2), json_schema (a subset),
// tool_trajectory. A malformed grader is an Error naming the field; a wrong answer is
// GradeResult{false, why}.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cmath>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"
#include "train/tasks/task.h"

namespace dsv4::tasks {

namespace {

std::string trim(const std::string& s) {
  const char* ws = " \t\r\n";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

// A compiled PCRE2 pattern (UTF mode). Throws Error naming `what` on a bad pattern.
class Pattern {
 public:
  Pattern(const std::string& pattern, const std::string& what) {
    int err = 0;
    PCRE2_SIZE off = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF, &err, &off,
                          nullptr);
    if (!code_) {
      PCRE2_UCHAR buf[256];
      pcre2_get_error_message(err, buf, sizeof buf);
      throw Error(what + ": bad regex /" + pattern + "/: " + reinterpret_cast<const char*>(buf) + " at offset " +
                  std::to_string(off));
    }
  }
  ~Pattern() { pcre2_code_free(code_); }
  Pattern(const Pattern&) = delete;
  Pattern& operator=(const Pattern&) = delete;

  // All matches (start, length) of the whole pattern, left to right.
  std::vector<std::pair<size_t, size_t>> find_all(const std::string& s, size_t max = SIZE_MAX) const {
    std::vector<std::pair<size_t, size_t>> out;
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
    size_t pos = 0;
    while (pos <= s.size() && out.size() < max) {
      const int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), pos, 0, md, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        pcre2_match_data_free(md);
        if (rc == PCRE2_ERROR_BADUTFOFFSET || (rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21)) return out;  // invalid UTF-8: no match
        throw Error("regex match failed (code " + std::to_string(rc) + ")");
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      out.emplace_back(ov[0], ov[1] - ov[0]);
      pos = ov[1] > ov[0] ? ov[1] : ov[1] + 1;
      // Step over a whole UTF-8 character after an empty match.
      while (pos < s.size() && (static_cast<unsigned char>(s[pos]) & 0xC0) == 0x80) ++pos;
    }
    pcre2_match_data_free(md);
    return out;
  }
  bool search(const std::string& s) const { return !find_all(s, 1).empty(); }

 private:
  pcre2_code* code_ = nullptr;
};

const Json& field(const Json& grader, const char* key) {
  auto it = grader.find(key);
  if (it == grader.end()) throw Error("grader (" + grader.value("type", std::string("?")) + "): missing field '" + key + "'");
  return *it;
}

std::string string_field(const Json& grader, const char* key) {
  const Json& v = field(grader, key);
  if (!v.is_string()) throw Error("grader: field '" + std::string(key) + "' must be a string");
  return v.get<std::string>();
}

double parse_number(const std::string& s, const std::string& what) {
  std::string t;
  for (char c : trim(s))
    if (c != ',') t += c;
  size_t pos = 0;
  double v = 0;
  try {
    v = std::stod(t, &pos);
  } catch (const std::exception&) {
    throw Error(what + ": not a number: '" + s + "'");
  }
  if (pos != t.size()) throw Error(what + ": not a number: '" + s + "'");
  return v;
}

GradeResult grade_numeric(const Json& g, const std::string& content) {
  const Json& a = field(g, "answer");
  double answer = 0;
  if (a.is_number()) answer = a.get<double>();
  else if (a.is_string()) answer = parse_number(a.get<std::string>(), "grader field 'answer'");
  else throw Error("grader: field 'answer' must be a number or a string");
  double tol = 0;
  if (auto it = g.find("tolerance"); it != g.end() && !it->is_null()) {
    if (!it->is_number() || it->get<double>() < 0) throw Error("grader: field 'tolerance' must be a number >= 0");
    tol = it->get<double>();
  }
  static const char* kNumber = R"((?<![\d.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)";
  const Pattern number(kNumber, "numeric grader");
  const auto all = number.find_all(content);
  if (all.empty()) return {false, "no number in the answer"};
  const std::string last = content.substr(all.back().first, all.back().second);
  const double got = parse_number(last, "answer");
  if (std::fabs(got - answer) <= tol) return {true, ""};
  return {false, "last number " + last + " != " + (a.is_string() ? a.get<std::string>() : a.dump())};
}

// ---- json_schema subset ----

std::string type_of(const Json& v) {
  if (v.is_object()) return "object";
  if (v.is_array()) return "array";
  if (v.is_string()) return "string";
  if (v.is_boolean()) return "boolean";
  if (v.is_null()) return "null";
  return "number";
}

bool has_type(const Json& v, const std::string& t) {
  if (t == "integer") return v.is_number_integer() || (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>());
  if (t == "number") return v.is_number();
  return type_of(v) == t;
}

size_t utf8_length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

const std::set<std::string> kKeywords = {"type", "required", "properties", "additionalProperties", "enum", "const",
                                          "minLength", "maxLength", "pattern", "minimum", "maximum", "items",
                                          "minItems", "maxItems", "title", "description", "$schema", "$id",
                                          "default", "examples"};

// "" if `v` is valid for `schema`, else why not (naming the JSON path).
std::string validate(const Json& schema, const Json& v, const std::string& path) {
  if (schema.is_boolean()) return schema.get<bool>() ? "" : path + ": not allowed";
  if (!schema.is_object()) throw Error("json_schema grader: schema at " + path + " must be an object or a boolean");
  for (auto it = schema.begin(); it != schema.end(); ++it)
    if (!kKeywords.count(it.key()))
      throw Error("json_schema grader: keyword '" + it.key() + "' at " + path + " is not supported");
  if (auto t = schema.find("type"); t != schema.end()) {
    bool ok = false;
    if (t->is_string()) ok = has_type(v, t->get<std::string>());
    else if (t->is_array())
      for (const auto& e : *t) ok = ok || (e.is_string() && has_type(v, e.get<std::string>()));
    else throw Error("json_schema grader: 'type' at " + path + " must be a string or an array");
    if (!ok) return path + ": expected type " + t->dump() + ", got " + type_of(v);
  }
  if (auto c = schema.find("const"); c != schema.end() && *c != v) return path + ": expected " + c->dump();
  if (auto e = schema.find("enum"); e != schema.end()) {
    if (!e->is_array()) throw Error("json_schema grader: 'enum' at " + path + " must be an array");
    bool found = false;
    for (const auto& x : *e) found = found || x == v;
    if (!found) return path + ": not one of " + e->dump();
  }
  auto num = [&](const char* k) -> const Json* {
    auto it = schema.find(k);
    if (it == schema.end()) return nullptr;
    if (!it->is_number()) throw Error("json_schema grader: '" + std::string(k) + "' at " + path + " must be a number");
    return &*it;
  };
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (auto k = num("minLength"); k && utf8_length(s) < k->get<double>()) return path + ": shorter than minLength";
    if (auto k = num("maxLength"); k && utf8_length(s) > k->get<double>()) return path + ": longer than maxLength";
    if (auto p = schema.find("pattern"); p != schema.end()) {
      if (!p->is_string()) throw Error("json_schema grader: 'pattern' at " + path + " must be a string");
      if (!Pattern(p->get<std::string>(), "json_schema grader pattern at " + path).search(s))
        return path + ": does not match pattern " + p->dump();
    }
  }
  if (v.is_number()) {
    const double x = v.get<double>();
    if (auto k = num("minimum"); k && x < k->get<double>()) return path + ": below minimum";
    if (auto k = num("maximum"); k && x > k->get<double>()) return path + ": above maximum";
  }
  if (v.is_array()) {
    if (auto k = num("minItems"); k && v.size() < k->get<double>()) return path + ": fewer items than minItems";
    if (auto k = num("maxItems"); k && v.size() > k->get<double>()) return path + ": more items than maxItems";
    if (auto items = schema.find("items"); items != schema.end())
      for (size_t i = 0; i < v.size(); ++i)
        if (auto why = validate(*items, v[i], path + "[" + std::to_string(i) + "]"); !why.empty()) return why;
  }
  if (v.is_object()) {
    if (auto r = schema.find("required"); r != schema.end()) {
      if (!r->is_array()) throw Error("json_schema grader: 'required' at " + path + " must be an array");
      for (const auto& k : *r)
        if (!k.is_string() || !v.contains(k.get<std::string>())) return path + ": missing required key " + k.dump();
    }
    const Json empty = Json::object();
    auto pit = schema.find("properties");
    const Json& props = pit == schema.end() ? empty : *pit;
    if (!props.is_object()) throw Error("json_schema grader: 'properties' at " + path + " must be an object");
    auto add = schema.find("additionalProperties");
    for (auto it = v.begin(); it != v.end(); ++it) {
      const std::string sub = path + "." + it.key();
      if (auto ps = props.find(it.key()); ps != props.end()) {
        if (auto why = validate(*ps, it.value(), sub); !why.empty()) return why;
      } else if (add != schema.end()) {
        if (auto why = validate(*add, it.value(), sub); !why.empty()) return why;
      }
    }
  }
  return "";
}

GradeResult grade_json_schema(const Json& g, const std::string& content) {
  const Json& schema = field(g, "schema");
  std::string text = trim(content);
  // A single fenced block (```json ... ```) is unwrapped.
  if (text.rfind("```", 0) == 0 && text.size() >= 6 && text.compare(text.size() - 3, 3, "```") == 0) {
    const size_t nl = text.find('\n');
    if (nl != std::string::npos && nl < text.size() - 3) text = trim(text.substr(nl + 1, text.size() - 3 - nl - 1));
  }
  Json v;
  try {
    v = Json::parse(text);
  } catch (const std::exception&) {
    return {false, "the answer is not one JSON value"};
  }
  std::string why = validate(schema, v, "$");
  if (why.empty()) return {true, ""};
  return {false, why};
}

GradeResult grade_tool_trajectory(const Json& g, const std::string& content, const std::vector<ToolCallMade>& calls) {
  const Json& want = field(g, "calls");
  if (!want.is_array()) throw Error("grader: field 'calls' must be an array");
  if (want.size() != calls.size())
    return {false, std::to_string(calls.size()) + " tool calls made, " + std::to_string(want.size()) + " expected"};
  for (size_t i = 0; i < want.size(); ++i) {
    const Json& w = want[i];
    if (!w.is_object() || !w.contains("name") || !w["name"].is_string())
      throw Error("grader: field 'calls[" + std::to_string(i) + "]' must be an object with a string 'name'");
    if (w["name"].get<std::string>() != calls[i].name)
      return {false, "call " + std::to_string(i + 1) + ": tool '" + calls[i].name + "', expected '" +
                         w["name"].get<std::string>() + "'"};
    const Json wargs = w.contains("arguments") ? w["arguments"] : Json::object();
    if (wargs != calls[i].arguments)
      return {false, "call " + std::to_string(i + 1) + ": arguments " + calls[i].arguments.dump() + ", expected " +
                         wargs.dump()};
  }
  const std::string answer = string_field(g, "answer");
  if (trim(content).find(answer) == std::string::npos) return {false, "final answer does not contain '" + answer + "'"};
  return {true, ""};
}

}  // namespace

GradeResult grade(const Json& grader, const std::string& content, const std::vector<ToolCallMade>& calls) {
  if (!grader.is_object()) throw Error("grader must be a JSON object");
  const std::string type = string_field(grader, "type");
  const std::string text = trim(content);
  if (type == "exact") {
    const std::string answer = trim(string_field(grader, "answer"));
    bool ci = false;
    if (auto it = grader.find("case_insensitive"); it != grader.end()) {
      if (!it->is_boolean()) throw Error("grader: field 'case_insensitive' must be a boolean");
      ci = it->get<bool>();
    }
    const bool ok = ci ? lower(text) == lower(answer) : text == answer;
    return ok ? GradeResult{true, ""} : GradeResult{false, "answer differs from '" + answer + "'"};
  }
  if (type == "numeric") return grade_numeric(grader, text);
  if (type == "regex") {
    const Pattern p(string_field(grader, "pattern"), "grader field 'pattern'");
    return p.search(text) ? GradeResult{true, ""} : GradeResult{false, "no match for the pattern"};
  }
  if (type == "json_schema") return grade_json_schema(grader, text);
  if (type == "tool_trajectory") return grade_tool_trajectory(grader, text, calls);
  throw Error("grader: unknown type '" + type + "' (exact, numeric, regex, json_schema, tool_trajectory)");
}

std::vector<ToolCallMade> tool_calls_in(const Json& messages) {
  if (!messages.is_array()) throw Error("reply messages must be an array");
  std::vector<ToolCallMade> out;
  for (size_t i = 0; i < messages.size(); ++i) {
    const Json& m = messages[i];
    if (!m.is_object() || m.value("role", "") != "assistant") continue;
    auto tc = m.find("tool_calls");
    if (tc == m.end() || tc->is_null()) continue;
    if (!tc->is_array()) throw Error("messages[" + std::to_string(i) + "].tool_calls must be an array");
    for (size_t k = 0; k < tc->size(); ++k) {
      const Json& c = (*tc)[k];
      const std::string where = "messages[" + std::to_string(i) + "].tool_calls[" + std::to_string(k) + "]";
      if (!c.is_object() || !c.contains("function") || !c["function"].is_object() ||
          !c["function"].contains("name") || !c["function"]["name"].is_string())
        throw Error(where + ": needs function.name");
      ToolCallMade call;
      call.name = c["function"]["name"].get<std::string>();
      const Json args = c["function"].value("arguments", Json());
      if (args.is_string()) {
        try {
          call.arguments = Json::parse(args.get<std::string>());
        } catch (const std::exception&) {
          call.arguments = args;
        }
        if (!call.arguments.is_object()) call.arguments = args;
      } else if (args.is_object()) {
        call.arguments = args;
      } else {
        call.arguments = args;
      }
      out.push_back(std::move(call));
    }
  }
  return out;
}

GradeResult grade_messages(const Json& grader, const Json& messages) {
  const auto calls = tool_calls_in(messages);
  std::string content;
  bool found = false;
  for (size_t i = messages.size(); i-- > 0;) {
    const Json& m = messages[i];
    if (m.is_object() && m.value("role", "") == "assistant") {
      if (m.contains("content") && m["content"].is_string()) content = m["content"].get<std::string>();
      found = true;
      break;
    }
  }
  if (!found) return {false, "no assistant message"};
  return grade(grader, content, calls);
}

}  // namespace dsv4::tasks
