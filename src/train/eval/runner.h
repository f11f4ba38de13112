// The `dsv4 eval` runner: each (task, reasoning mode) is one conversation with a chat backend
// (the local engine or an OpenAI-compatible endpoint). Tool calls in a reply are executed
// with the task's simulated tools, the assistant message (reasoning kept) and the tool
// results are appended, and the model is asked again, up to a bound of rounds; the final
// answer is graded. The runner keeps up to backend.max_parallel() conversations in flight
// and hands the backend one request per active conversation at a time, so a backend may
// answer them in parallel threads (endpoint) or as one batch (engine batched generation).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "train/tasks/task.h"

namespace dsv4::eval {

using Json = tasks::Json;

// One chat completion to make.
struct TurnRequest {
  Json messages = Json::array();  // OpenAI-style messages (assistant turns carry reasoning_content)
  Json tools = Json::array();     // OpenAI function tools ([] = none)
  tasks::Mode mode = tasks::Mode::NonThink;
  uint64_t seed = 0;              // sampling seed of this turn (deterministic per task, mode, round)
};

// The backend's answer to one TurnRequest.
struct TurnReply {
  std::string error;              // non-empty: the turn failed (HTTP error, bad reply, ...)
  std::string content;
  std::string reasoning;          // reasoning_content
  // OpenAI tool calls: [{"id", "type": "function", "function": {"name", "arguments": JSON text}}]
  Json tool_calls = Json::array();
  int64_t completion_tokens = 0;
  int64_t reasoning_tokens = 0;
  double seconds = 0.0;           // wall time of this turn
};

class ChatBackend {
 public:
  virtual ~ChatBackend() = default;
  // Reply i answers request i. Must not throw for a failed turn (set TurnReply::error).
  virtual std::vector<TurnReply> complete(const std::vector<TurnRequest>& requests) = 0;
  // How many conversations the runner keeps in flight (requests per complete() call).
  virtual int max_parallel() const = 0;
};

// The simulated tools and graders: tasks::run_tool / tasks::grade (default_task_ops()), or
// others plugged in.
struct TaskOps {
  std::function<std::string(const Json& tool_env, const std::string& name, const Json& arguments)> run_tool;
  std::function<tasks::GradeResult(const Json& grader, const std::string& content, const std::vector<tasks::ToolCallMade>& calls)> grade;
};
TaskOps default_task_ops();  // tasks::run_tool and tasks::grade

struct EvalOptions {
  std::vector<tasks::Mode> modes{tasks::Mode::NonThink, tasks::Mode::ThinkHigh, tasks::Mode::ThinkMax};
  int max_rounds = 8;   // model turns per conversation (tool rounds + the final answer)
  uint64_t seed = 0;    // base of the per-turn sampling seeds
  // Polled before and after each backend call (e.g. Ctrl-C): true stops the run; only the
  // conversations finished by then come back (a turn answered after the stop is dropped).
  std::function<bool()> should_stop;
};

// The outcome of one (task, mode).
struct TaskRecord {
  std::string id;
  std::string suite;
  tasks::Mode mode = tasks::Mode::NonThink;
  bool correct = false;
  std::string detail;     // the grader's reason (or the error)
  std::string error;      // non-empty: the conversation failed (counted as wrong)
  std::string answer;     // the final content
  std::string reasoning;  // the final turn's reasoning
  Json calls = Json::array();  // tool calls made, in order: [{"name", "arguments", "result"}]
  int rounds = 0;              // model turns
  int64_t completion_tokens = 0;  // over all turns
  int64_t reasoning_tokens = 0;
  double seconds = 0.0;           // over all turns
};

// Called after each finished (task, mode), in completion order: done of total so far.
using ProgressCallback = std::function<void(const TaskRecord& r, int64_t done, int64_t total)>;

// Runs every task in every mode. Records come back in task order, modes within a task in
// options.modes order, whatever the backend's parallelism (after a stop: the finished ones,
// in that order).
std::vector<TaskRecord> run_eval(ChatBackend& backend, const std::vector<tasks::Task>& tasks, const EvalOptions& options,
                                 const TaskOps& ops, const ProgressCallback& progress = {});

}  // namespace dsv4::eval
