// code.trace: "What does this program print?" for tiny Python-like programs (two variables,
// a loop of 2-4 turns, an optional if). The trace writes the state after every line; think-max
// re-reads the values each variable took.
#include <string>
#include <vector>

#include "train/tasks/gen.h"

namespace dsv4::tasks::gen {

namespace {

std::string s(int64_t v) { return std::to_string(v); }

std::string join(const std::vector<int64_t>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + s(v[i]);
  return out;
}

}  // namespace

Problem code_trace(Rng& rng) {
  Problem p;
  int64_t x = rng.range(1, 9), y = rng.range(1, 9);
  const int turns = static_cast<int>(rng.range(2, 4));
  const int body = static_cast<int>(rng.range(0, 3));  // x = x + y | x = x - y | x = x * 2 | x = x + i
  const bool has_if = rng.coin();
  const int64_t limit = rng.range(5, 20);
  const int cond_gt = rng.coin();                     // if x > L  |  if x < L
  const int64_t delta = rng.range(1, 3);
  const bool if_add = rng.coin();                     // y = y + d | y = y - d
  const int print = static_cast<int>(rng.range(0, 2));  // x | y | x + y
  const char* body_src[] = {"x = x + y", "x = x - y", "x = x * 2", "x = x + i"};
  std::string code = "x = " + s(x) + "\ny = " + s(y) + "\nfor i in range(" + s(turns) + "):\n    " + body_src[body] + "\n";
  const std::string cond = std::string("x ") + (cond_gt ? ">" : "<") + " " + s(limit);
  const std::string upd = std::string("y = y ") + (if_add ? "+" : "-") + " " + s(delta);
  if (has_if) code += "    if " + cond + ":\n        " + upd + "\n";
  const char* print_src[] = {"print(x)", "print(y)", "print(x + y)"};
  code += print_src[print];

  std::string work = "x = " + s(x) + ", y = " + s(y) + ".";
  std::vector<int64_t> xs = {x}, ys = {y};
  for (int i = 0; i < turns; ++i) {
    int64_t nx = x;
    std::string step;
    switch (body) {
      case 0: nx = x + y; step = "x = " + s(x) + " + " + s(y) + " = " + s(nx); break;
      case 1: nx = x - y; step = "x = " + s(x) + " - " + s(y) + " = " + s(nx); break;
      case 2: nx = x * 2; step = "x = " + s(x) + " * 2 = " + s(nx); break;
      default: nx = x + i; step = "x = " + s(x) + " + " + s(i) + " = " + s(nx); break;
    }
    x = nx;
    xs.push_back(x);
    work += "\ni = " + s(i) + ": " + step + ".";
    if (has_if) {
      const bool taken = cond_gt ? x > limit : x < limit;
      work += " " + s(x) + (cond_gt ? " > " : " < ") + s(limit) + " is " + (taken ? "true" : "false");
      if (taken) {
        const int64_t ny = if_add ? y + delta : y - delta;
        work += ", so y = " + s(y) + (if_add ? " + " : " - ") + s(delta) + " = " + s(ny);
        y = ny;
        ys.push_back(y);
      }
      work += ".";
    }
  }
  const int64_t out = print == 0 ? x : print == 1 ? y : x + y;
  work += "\nAt the end x = " + s(x) + " and y = " + s(y) + ".";
  if (print == 2) work += "\nx + y = " + s(x) + " + " + s(y) + " = " + s(out) + ".";
  work += "\n" + std::string(print_src[print]) + " prints " + s(out) + ".";
  std::string check = "Check: x took the values " + join(xs) + ". y took the values " + join(ys) + ".";
  check += "\nThe last values are x = " + s(x) + " and y = " + s(y) + ", so it prints " + s(out) + ".";
  p.canonical = code;
  p.messages = user_messages("What does this program print?\n\n" + code);
  p.grader = Json{{"type", "numeric"}, {"answer", s(out)}, {"tolerance", 0}};
  set_single_turn_targets(p, work, check, "It prints " + s(out) + ".");
  return p;
}

}  // namespace dsv4::tasks::gen
