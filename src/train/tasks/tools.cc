// The simulated tools of tool tasks: calculator (a small recursive-descent parser, no eval),
// lookup (a key -> value table), read_file / list_files (an in-memory file set).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "base/error.h"
#include "train/tasks/task.h"

namespace dsv4::tasks {

namespace {

// expr   := term (('+' | '-') term)*
// term   := factor (('*' | '/') factor)*
// factor := ('-' | '+') factor | number | '(' expr ')'
class Calc {
 public:
  explicit Calc(const std::string& s) : s_(s) {}
  double run() {
    skip();
    if (pos_ >= s_.size()) fail("empty expression");
    const double v = expr(0);
    skip();
    if (pos_ < s_.size()) fail(std::string("unexpected '") + s_[pos_] + "'");
    if (!std::isfinite(v)) fail("result is not a finite number");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(what + " at position " + std::to_string(pos_ + 1) + " in '" + s_ + "'");
  }
  void skip() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t')) ++pos_;
  }
  double expr(int depth) {
    double v = term(depth);
    for (;;) {
      skip();
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) {
        const char op = s_[pos_++];
        const double r = term(depth);
        v = op == '+' ? v + r : v - r;
      } else {
        return v;
      }
    }
  }
  double term(int depth) {
    double v = factor(depth);
    for (;;) {
      skip();
      if (pos_ < s_.size() && (s_[pos_] == '*' || s_[pos_] == '/')) {
        const char op = s_[pos_++];
        const size_t at = pos_;
        const double r = factor(depth);
        if (op == '/') {
          if (r == 0) {
            pos_ = at;
            fail("division by zero");
          }
          v /= r;
        } else {
          v *= r;
        }
      } else {
        return v;
      }
    }
  }
  double factor(int depth) {
    if (depth > 64) fail("expression nested too deeply");
    skip();
    if (pos_ >= s_.size()) fail("expected a number");
    const char c = s_[pos_];
    if (c == '-' || c == '+') {
      ++pos_;
      const double v = factor(depth + 1);
      return c == '-' ? -v : v;
    }
    if (c == '(') {
      ++pos_;
      const double v = expr(depth + 1);
      skip();
      if (pos_ >= s_.size() || s_[pos_] != ')') fail("expected ')'");
      ++pos_;
      return v;
    }
    if ((c >= '0' && c <= '9') || c == '.') {
      const size_t start = pos_;
      bool dot = false, digit = false;
      while (pos_ < s_.size() && ((s_[pos_] >= '0' && s_[pos_] <= '9') || s_[pos_] == '.')) {
        if (s_[pos_] == '.') {
          if (dot) fail("a number has two decimal points");
          dot = true;
        } else {
          digit = true;
        }
        ++pos_;
      }
      if (!digit) {
        pos_ = start;
        fail("expected a number");
      }
      return std::stod(s_.substr(start, pos_ - start));
    }
    fail(std::string("unexpected '") + c + "'");
  }

  const std::string& s_;
  size_t pos_ = 0;
};

std::string string_arg(const Json& arguments, const char* key, const std::string& tool) {
  if (!arguments.is_object()) throw Error(tool + ": arguments must be a JSON object");
  auto it = arguments.find(key);
  if (it == arguments.end()) throw Error(tool + ": missing argument '" + key + "'");
  if (!it->is_string()) throw Error(tool + ": argument '" + std::string(key) + "' must be a string");
  return it->get<std::string>();
}

const Json* env_entry(const Json& tool_env, const char* key) {
  if (!tool_env.is_object()) return nullptr;
  auto it = tool_env.find(key);
  if (it == tool_env.end() || it->is_null() || (it->is_boolean() && !it->get<bool>())) return nullptr;
  return &*it;
}

}  // namespace

double calculate(const std::string& expression) { return Calc(expression).run(); }

std::string format_number(double v) {
  if (std::fabs(v) < 1e15 && v == std::floor(v)) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
    return buf;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6f", v);
  std::string s = buf;
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  if (s == "-0") s = "0";
  return s;
}

std::string run_tool(const Json& tool_env, const std::string& name, const Json& arguments) {
  try {
    if (name == "calculator") {
      if (!env_entry(tool_env, "calculator")) return "error: tool 'calculator' is not available";
      return format_number(calculate(string_arg(arguments, "expression", name)));
    }
    if (name == "lookup") {
      const Json* table = env_entry(tool_env, "lookup");
      if (!table || !table->is_object()) return "error: tool 'lookup' is not available";
      const std::string key = string_arg(arguments, "key", name);
      auto it = table->find(key);
      if (it == table->end()) return "error: no entry for '" + key + "'";
      return it->is_string() ? it->get<std::string>() : it->dump();
    }
    if (name == "read_file" || name == "list_files") {
      const Json* files = env_entry(tool_env, "files");
      if (!files || !files->is_object()) return "error: tool '" + name + "' is not available";
      if (name == "list_files") {
        if (!arguments.is_object() && !arguments.is_null()) throw Error("list_files: arguments must be a JSON object");
        std::vector<std::string> paths;
        for (auto it = files->begin(); it != files->end(); ++it) paths.push_back(it.key());
        std::sort(paths.begin(), paths.end());
        std::string out;
        for (const auto& p : paths) out += (out.empty() ? "" : "\n") + p;
        return out;
      }
      const std::string path = string_arg(arguments, "path", name);
      auto it = files->find(path);
      if (it == files->end()) return "error: no such file '" + path + "'";
      return it->is_string() ? it->get<std::string>() : it->dump();
    }
    return "error: unknown tool '" + name + "'";
  } catch (const Error& e) {
    return std::string("error: ") + e.what();
  }
}

}  // namespace dsv4::tasks
