// The built-in suites: names, descriptions, the split rule and the generation loop.
#include <cstdio>
#include <unordered_set>

#include "base/error.h"
#include "train/tasks/gen.h"
#include "train/tasks/task.h"

namespace dsv4::tasks {

namespace {

struct SuiteDef {
  const char* name;
  const char* domain;
  const char* description;
  gen::Generator generator;  // null for longctx (takes its length)
  int64_t longctx_tokens;
};


gen::Problem longctx_4k(gen::Rng& r) { return gen::longctx(r, 4096); }
gen::Problem longctx_16k(gen::Rng& r) { return gen::longctx(r, 16384); }
gen::Problem longctx_64k(gen::Rng& r) { return gen::longctx(r, 65536); }

const SuiteDef kSuites[] = {
    {"math.arith", "math", "one column operation: a + b, a - b (2-4 digits), a x d (2-4 digits x one digit)",
     gen::math_arith, 0},
    {"math.multistep", "math", "word problems with 2-3 operations (add, take away, boxes of k)", gen::math_multistep, 0},
    {"code.trace", "code", "what does this tiny program print (assignments, a loop of 2-4 turns, if)", gen::code_trace,
     0},
    {"logic.order", "logic", "orderings of 3-5 people from pairwise facts: tallest / shortest / k-th",
     gen::logic_order, 0},
    {"instruct.format", "instruct", "format constraints: JSON with given keys, upper case repeated, counting, reversing",
     gen::instruct_format, 0},
    {"tools.multi", "tools", "2-3 tool calls (calculator, lookup, list_files / read_file), results fed back",
     gen::tools_multi, 0},
    {"longctx.4k", "longctx", "a fact buried in about 4K tokens of filler (4 chars / token), asked at the end",
     longctx_4k, 4096},
    {"longctx.16k", "longctx", "a fact buried in about 16K tokens of filler, asked at the end", longctx_16k, 16384},
    {"longctx.64k", "longctx", "a fact buried in about 64K tokens of filler, asked at the end", longctx_64k, 65536},
    {"chat.identity", "chat", "greetings and who-are-you questions, answered with the model's identity",
     gen::chat_identity, 0},
};

const SuiteDef& find_suite(const std::string& name) {
  for (const auto& s : kSuites)
    if (name == s.name) return s;
  std::string known;
  for (const auto& s : kSuites) known += std::string(known.empty() ? "" : ", ") + s.name;
  throw Error("unknown suite '" + name + "' (known: " + known + ")");
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

std::vector<std::string> suite_names() {
  std::vector<std::string> out;
  for (const auto& s : kSuites) out.emplace_back(s.name);
  return out;
}

std::string suite_description(const std::string& suite) { return find_suite(suite).description; }

// One problem in five is held out: the canonical form's hash decides, so a problem lands in the
// same split whatever seed or n drew it.
Split split_of(const std::string& suite, const std::string& canonical) {
  uint64_t h = fnv1a(suite + "\n" + canonical);
  uint64_t st = h;
  h = splitmix64(st);  // mix the low bits
  return h % 5 == 0 ? Split::Heldout : Split::Train;
}

std::vector<Task> generate_suite(const std::string& suite, Split split, int64_t n, uint64_t seed) {
  const SuiteDef& def = find_suite(suite);
  if (n < 0) throw Error("generate_suite: n must be >= 0");
  uint64_t st = seed ^ fnv1a(suite);
  gen::Rng rng(splitmix64(st) ^ (split == Split::Heldout ? 0x5A5A5A5Aull : 0));
  std::vector<Task> out;
  out.reserve(static_cast<size_t>(n));
  std::unordered_set<std::string> seen;
  // Distinct problems while the suite's space allows; once 2000 draws in a row bring nothing
  // new (a small space such as chat.identity), repeats are allowed.
  int64_t stale = 0;
  const int64_t kStale = 2000;
  while (static_cast<int64_t>(out.size()) < n) {
    gen::Problem p = def.generator(rng);
    if (split_of(suite, p.canonical) != split) continue;
    if (seen.count(p.canonical) && stale < kStale) {
      ++stale;
      continue;
    }
    if (!seen.count(p.canonical)) stale = 0;
    seen.insert(p.canonical);
    Task t;
    char idx[32];
    std::snprintf(idx, sizeof idx, "%06lld", static_cast<long long>(out.size()));
    t.id = suite + "/" + split_name(split) + "/" + idx;
    t.suite = suite;
    t.domain = def.domain;
    t.split = split;
    t.canonical = std::move(p.canonical);
    t.messages = std::move(p.messages);
    t.tools = std::move(p.tools);
    t.tool_env = std::move(p.tool_env);
    t.grader = std::move(p.grader);
    t.targets = std::move(p.targets);
    out.push_back(std::move(t));
  }
  return out;
}

namespace gen {

Json user_messages(const std::string& prompt) {
  return Json::array({Json{{"role", "user"}, {"content", prompt}}});
}

std::string answer_sentence(const std::string& x) { return "The answer is " + x + "."; }

void set_reasoning_targets(Problem& p, const std::string& high, const std::string& max, const std::string& content) {
  p.targets[0] = Json::array({Json{{"role", "assistant"}, {"content", content}}});
  p.targets[1] = Json::array({Json{{"role", "assistant"}, {"reasoning_content", high}, {"content", content}}});
  p.targets[2] = Json::array({Json{{"role", "assistant"}, {"reasoning_content", max}, {"content", content}}});
}

void set_single_turn_targets(Problem& p, const std::string& work, const std::string& check,
                             const std::string& content) {
  set_reasoning_targets(p, work, work + "\n" + check, content);
}

}  // namespace gen

}  // namespace dsv4::tasks
