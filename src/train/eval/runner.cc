#include "train/eval/runner.h"

#include <algorithm>
#include <exception>
#include <utility>

#include "base/error.h"
#include "base/random.h"

namespace dsv4::eval {
namespace {


struct Conversation {
  size_t job = 0;
  const tasks::Task* task = nullptr;
  Json messages;
  std::vector<tasks::ToolCallMade> calls;
  TaskRecord rec;
  bool done = false;
};

// The arguments of a tool call as the tools see them: the parsed JSON object, or the raw
// text as a JSON string when it is not valid JSON (the tool answers with an error then).
Json parse_arguments(const Json& fn) {
  const Json* a = fn.contains("arguments") ? &fn["arguments"] : nullptr;
  if (!a || a->is_null()) return Json::object();
  if (!a->is_string()) return *a;
  try {
    return Json::parse(a->get<std::string>());
  } catch (const std::exception&) {
    return *a;
  }
}

void finish_with_error(Conversation& c, const std::string& error) {
  c.rec.error = error;
  c.rec.detail = error;
  c.rec.correct = false;
  c.done = true;
}

void handle_reply(Conversation& c, TurnReply&& r, int max_rounds, const TaskOps& ops) {
  c.rec.rounds += 1;
  c.rec.completion_tokens += r.completion_tokens;
  c.rec.reasoning_tokens += r.reasoning_tokens;
  c.rec.seconds += r.seconds;
  c.rec.answer = r.content;
  c.rec.reasoning = r.reasoning;
  if (!r.error.empty()) return finish_with_error(c, r.error);
  if (!r.tool_calls.is_array()) return finish_with_error(c, "tool_calls is not an array");
  if (!r.tool_calls.empty()) {
    if (c.rec.rounds >= max_rounds)
      return finish_with_error(c, "no final answer after " + std::to_string(max_rounds) + " turns (the model kept calling tools)");
    Json assistant = {{"role", "assistant"}, {"content", r.content}};
    if (!r.reasoning.empty()) assistant["reasoning_content"] = r.reasoning;
    Json tool_msgs = Json::array();
    Json calls = Json::array();
    for (size_t k = 0; k < r.tool_calls.size(); ++k) {
      Json tc = r.tool_calls[k];
      if (!tc.is_object() || !tc.contains("function") || !tc["function"].is_object() || !tc["function"].contains("name") ||
          !tc["function"]["name"].is_string())
        return finish_with_error(c, "tool_calls[" + std::to_string(k) + "] has no function name");
      if (!tc.contains("id") || !tc["id"].is_string() || tc["id"].get<std::string>().empty())
        tc["id"] = "call_" + std::to_string(c.rec.rounds) + "_" + std::to_string(k);
      tc["type"] = "function";
      const std::string name = tc["function"]["name"].get<std::string>();
      Json args = parse_arguments(tc["function"]);
      std::string result;
      try {
        result = ops.run_tool(c.task->tool_env, name, args);
      } catch (const std::exception& e) {
        result = std::string("error: ") + e.what();
      }
      c.calls.push_back(tasks::ToolCallMade{name, args});
      c.rec.calls.push_back(Json{{"name", name}, {"arguments", args}, {"result", result}});
      tool_msgs.push_back(Json{{"role", "tool"}, {"tool_call_id", tc["id"]}, {"content", result}});
      calls.push_back(std::move(tc));
    }
    assistant["tool_calls"] = std::move(calls);
    c.messages.push_back(std::move(assistant));
    for (Json& m : tool_msgs) c.messages.push_back(std::move(m));
    return;
  }
  try {
    const tasks::GradeResult g = ops.grade(c.task->grader, r.content, c.calls);
    c.rec.correct = g.correct;
    c.rec.detail = g.detail;
  } catch (const std::exception& e) {
    return finish_with_error(c, std::string("grader: ") + e.what());
  }
  c.done = true;
}

}  // namespace

std::vector<TaskRecord> run_eval(ChatBackend& backend, const std::vector<tasks::Task>& tasks, const EvalOptions& options,
                                 const TaskOps& ops, const ProgressCallback& progress) {
  if (options.modes.empty()) throw Error("eval: no reasoning modes to run");
  if (options.max_rounds < 1) throw Error("eval: max_rounds must be at least 1");
  if (!ops.run_tool || !ops.grade) throw Error("eval: the task operations (run_tool, grade) are not set");
  const size_t n_modes = options.modes.size();
  const size_t total = tasks.size() * n_modes;
  const size_t parallel = static_cast<size_t>(std::max(1, backend.max_parallel()));
  std::vector<TaskRecord> out(total);
  std::vector<char> finished(total, 0);
  std::vector<Conversation> active;
  size_t next = 0;
  int64_t done = 0;
  bool stopped = false;
  auto stop_requested = [&] { return options.should_stop && options.should_stop(); };
  while (next < total || !active.empty()) {
    if (stop_requested()) {
      stopped = true;
      break;
    }
    while (active.size() < parallel && next < total) {
      Conversation c;
      c.job = next;
      c.task = &tasks[next / n_modes];
      c.messages = c.task->messages;
      c.rec.id = c.task->id;
      c.rec.suite = c.task->suite;
      c.rec.mode = options.modes[next % n_modes];
      active.push_back(std::move(c));
      ++next;
    }
    std::vector<TurnRequest> reqs;
    reqs.reserve(active.size());
    for (const Conversation& c : active) {
      TurnRequest q;
      q.messages = c.messages;
      q.tools = c.task->tools;
      q.mode = c.rec.mode;
      q.seed = mix64(options.seed ^ mix64(c.job * 64 + static_cast<uint64_t>(c.rec.rounds)));
      reqs.push_back(std::move(q));
    }
    std::vector<TurnReply> replies = backend.complete(reqs);
    if (replies.size() != reqs.size())
      throw Error("eval: the backend answered " + std::to_string(replies.size()) + " of " + std::to_string(reqs.size()) + " requests");
    if (stop_requested()) {
      stopped = true;
      break;
    }
    std::vector<Conversation> still;
    for (size_t i = 0; i < active.size(); ++i) {
      Conversation& c = active[i];
      handle_reply(c, std::move(replies[i]), options.max_rounds, ops);
      if (!c.done) {
        still.push_back(std::move(c));
        continue;
      }
      ++done;
      finished[c.job] = 1;
      out[c.job] = std::move(c.rec);
      if (progress) progress(out[c.job], done, static_cast<int64_t>(total));
    }
    active = std::move(still);
  }
  if (stopped) {
    std::vector<TaskRecord> kept;
    for (size_t j = 0; j < total; ++j)
      if (finished[j]) kept.push_back(std::move(out[j]));
    return kept;
  }
  return out;
}

}  // namespace dsv4::eval
