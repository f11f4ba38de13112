// Mathematics suites: math.arith (one column operation) and math.multistep (word problems
// with 2-3 operations). Traces are column work with carries / borrows written out; think-max
// adds a check by the inverse operation (arith) or by undoing the steps backwards (multistep).
#include <string>
#include <vector>

#include "train/tasks/gen.h"

namespace dsv4::tasks::gen {

namespace {

Json numeric_grader(int64_t v) { return Json{{"type", "numeric"}, {"answer", std::to_string(v)}, {"tolerance", 0}}; }

std::string s(int64_t v) { return std::to_string(v); }

int64_t digits_number(Rng& rng, int lo_digits, int hi_digits) {
  const int d = static_cast<int>(rng.range(lo_digits, hi_digits));
  int64_t lo = 1;
  for (int i = 1; i < d; ++i) lo *= 10;
  return rng.range(lo, lo * 10 - 1);
}

}  // namespace

Problem math_arith(Rng& rng) {
  Problem p;
  const int op = static_cast<int>(rng.range(0, 2));
  int64_t a = digits_number(rng, 2, 4), b = 0, r = 0;
  std::string sym, work, check;
  if (op == 0) {
    b = digits_number(rng, 2, 4);
    r = a + b;
    sym = "+";
    work = add_trace(a, b);
    check = "Check by subtraction:\n" + sub_trace(r, b) + "\nThat gives back " + s(a) + ", so " + s(r) + " is right.";
  } else if (op == 1) {
    b = digits_number(rng, 2, 4);
    if (a < b) std::swap(a, b);
    r = a - b;
    sym = "-";
    work = sub_trace(a, b);
    check = "Check by addition:\n" + add_trace(r, b) + "\nThat gives back " + s(a) + ", so " + s(r) + " is right.";
  } else {
    b = rng.range(2, 9);
    r = a * b;
    sym = "x";
    work = mul_trace(a, b);
    check = "Check by place values:\n" + mul_check_trace(a, b);
  }
  p.canonical = s(a) + sym + s(b);
  p.messages = user_messages("What is " + s(a) + " " + sym + " " + s(b) + "?");
  p.grader = numeric_grader(r);
  set_single_turn_targets(p, work, check, answer_sentence(s(r)));
  return p;
}

namespace {

struct Person {
  const char* name;
  const char* he;   // He / She
};
const std::vector<Person> kPeople = {{"Sam", "He"}, {"Ana", "She"}, {"Tom", "He"}, {"Mia", "She"},
                                     {"Ben", "He"}, {"Lea", "She"}, {"Max", "He"}, {"Eva", "She"}};
const std::vector<std::string> kItems = {"apples", "books", "coins", "stamps", "cards", "pens", "shells", "marbles"};

}  // namespace

Problem math_multistep(Rng& rng) {
  Problem p;
  const Person& who = rng.pick(kPeople);
  const std::string item = rng.pick(kItems);
  const std::string he = who.he;
  int64_t cur = rng.range(20, 999);
  const int64_t start = cur;
  const int steps = static_cast<int>(rng.range(2, 3));
  std::string story = std::string(who.name) + " has " + s(cur) + " " + item + ".";
  std::string work = "Start: " + s(cur) + " " + item + ".";
  std::string canon = s(start);
  // The undo lines of the think-max check, latest step first.
  std::vector<std::string> undo;
  int kind_prev = -1;
  for (int i = 0; i < steps; ++i) {
    int kind = static_cast<int>(rng.range(0, 2));
    if (kind == kind_prev) kind = (kind + 1) % 3;  // vary the steps
    if (kind == 1 && cur < 20) kind = 0;
    kind_prev = kind;
    const std::string then = i == 0 ? "" : "Then ";
    const std::string subj = i == 0 ? he : std::string(1, static_cast<char>(std::tolower(he[0]))) + he.substr(1);
    work += "\nStep " + s(i + 1) + ": ";
    if (kind == 0) {
      const int64_t k = rng.range(10, 999);
      story += " " + then + subj + " buys " + s(k) + " more " + item + ".";
      work += "buys " + s(k) + " more, so add.\n" + add_trace(cur, k);
      undo.push_back(s(cur + k) + " - " + s(k) + " = " + s(cur));
      cur += k;
      canon += "+" + s(k);
    } else if (kind == 1) {
      const int64_t k = rng.range(10, cur - 1 < 999 ? cur - 1 : 999);
      story += " " + then + subj + " gives away " + s(k) + " " + item + ".";
      work += "gives away " + s(k) + ", so subtract.\n" + sub_trace(cur, k);
      undo.push_back(s(cur - k) + " + " + s(k) + " = " + s(cur));
      cur -= k;
      canon += "-" + s(k);
    } else {
      const int64_t m = rng.range(2, 9), k = rng.range(11, 99);
      story += " " + then + subj + " buys " + s(m) + " boxes with " + s(k) + " " + item + " in each box.";
      work += s(m) + " boxes of " + s(k) + " is " + s(k) + " x " + s(m) + ".\n" + mul_trace(k, m) + "\nAdd " +
              s(k * m) + ".\n" + add_trace(cur, k * m);
      undo.push_back(s(cur + k * m) + " - " + s(k * m) + " = " + s(cur));
      cur += k * m;
      canon += "+" + s(m) + "*" + s(k);
    }
    work += "\nNow " + s(cur) + " " + item + ".";
  }
  story += " How many " + item + " does " + who.name + " have now?";
  work += "\n" + std::string(who.name) + " has " + s(cur) + " " + item + ".";
  std::string check = "Check by undoing the steps backwards from " + s(cur) + ":";
  for (size_t i = undo.size(); i-- > 0;) check += "\nundo step " + s(static_cast<int64_t>(i) + 1) + ": " + undo[i];
  check += "\nThat is the start, " + s(start) + ", so " + s(cur) + " is right.";
  p.canonical = canon;
  p.messages = user_messages(story);
  p.grader = numeric_grader(cur);
  set_single_turn_targets(p, work, check, answer_sentence(s(cur)));
  return p;
}

}  // namespace dsv4::tasks::gen
