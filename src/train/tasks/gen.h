// Internal helpers of the built-in suites: the random draws, one generated problem, the
// per-mode targets and the worked arithmetic traces shared by math and tools.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "base/random.h"
#include "train/tasks/task.h"

namespace dsv4::tasks::gen {

// Seeded draws (xoshiro256**; identical on every platform).
class Rng {
 public:
  explicit Rng(uint64_t seed) : x_(seed) {}
  uint64_t next() { return x_.next(); }
  // Uniform integer in [lo, hi] (inclusive).
  int64_t range(int64_t lo, int64_t hi) {
    const uint64_t span = static_cast<uint64_t>(hi - lo) + 1;
    return lo + static_cast<int64_t>(x_.next() % span);
  }
  bool coin() { return (x_.next() >> 63) != 0; }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[static_cast<size_t>(range(0, static_cast<int64_t>(v.size()) - 1))];
  }
  template <class T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[static_cast<size_t>(range(0, static_cast<int64_t>(i) - 1))]);
  }

 private:
  Xoshiro256 x_;
};

// One generated problem, before it gets its id / split.
struct Problem {
  std::string canonical;  // decides the split; equal problems have equal canonical forms
  Json messages = Json::array();
  Json tools = Json::array();
  Json tool_env = nullptr;
  Json grader = Json::object();
  std::array<Json, kModes> targets{Json::array(), Json::array(), Json::array()};
};

// A suite's problem generator.
using Generator = Problem (*)(Rng& rng);

// The targets of a one-turn answer: non-think = content only; think-high and think-max =
// their reasoning_content and the same content.
void set_reasoning_targets(Problem& p, const std::string& high, const std::string& max, const std::string& content);
// The targets of a one-turn answer: non-think = content only; think-high = `work` as
// reasoning_content; think-max = `work` + "\n" + `check`.
void set_single_turn_targets(Problem& p, const std::string& work, const std::string& check,
                             const std::string& content);
Json user_messages(const std::string& prompt);

// "The answer is X." — the fixed, gradeable last sentence of math / code / logic answers.
std::string answer_sentence(const std::string& x);

// Worked column arithmetic (non-negative integers), one line per column, ending with the
// result line "So A op B = R.".
std::string add_trace(int64_t a, int64_t b);
std::string sub_trace(int64_t a, int64_t b);  // requires a >= b
std::string mul_trace(int64_t a, int64_t d);  // d in 0..9
// Place-value route for a * d (the think-max check of a multiplication).
std::string mul_check_trace(int64_t a, int64_t d);

// Suite generators (suites_*.cc).
Problem math_arith(Rng& rng);
Problem math_multistep(Rng& rng);
Problem code_trace(Rng& rng);
Problem logic_order(Rng& rng);
Problem instruct_format(Rng& rng);
Problem tools_multi(Rng& rng);
Problem chat_identity(Rng& rng);
Problem longctx(Rng& rng, int64_t tokens);

}  // namespace dsv4::tasks::gen
