// Tasks with verifiable answers (issue 12): what one task is, the built-in generated suites,
// the simulated tools of tool tasks and the graders. No torch here: `dsv4 eval` and the
// post-training data preparation both use it. The JSONL form is docs/tasks-format.md.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dsv4::tasks {

using Json = nlohmann::ordered_json;

enum class Split { Train, Heldout };
// The three V4 reasoning modes: non-think (chat mode), think-high (thinking mode, effort
// "high": no prefix in the preview effort table), think-max (thinking mode, effort "max").
enum class Mode { NonThink = 0, ThinkHigh = 1, ThinkMax = 2 };
inline constexpr int kModes = 3;

const char* split_name(Split s);           // "train" | "heldout"
Split parse_split(const std::string& s);   // throws Error naming the value
const char* mode_name(Mode m);             // "non-think" | "think-high" | "think-max"
Mode parse_mode(const std::string& s);     // also accepts "chat"/"high"/"max"

struct Task {
  std::string id;      // unique within a suite and split, e.g. "math.multistep/heldout/000017"
  std::string suite;   // e.g. "math.multistep"
  std::string domain;  // "math" | "code" | "logic" | "instruct" | "tools" | "longctx" | "chat"
  Split split = Split::Train;
  // The problem's canonical form (what decides its split; built-in suites only, "" for a
  // user-brought task). Optional in JSONL ("canonical").
  std::string canonical;
  Json messages = Json::array();  // the prompt: OpenAI-style messages (system?, user)
  Json tools = Json::array();     // OpenAI function tools ([] = none)
  Json tool_env = nullptr;        // what the simulated tools answer (see tools below)
  Json grader = Json::object();   // {"type": ..., ...} (see grade below)
  // SFT targets per mode (index = Mode): the messages that follow the prompt (assistant with
  // reasoning_content / content / tool_calls, tool results, ... , final assistant). Empty
  // array = no target (e.g. a user-brought task).
  std::array<Json, kModes> targets{Json::array(), Json::array(), Json::array()};
};

Json task_to_json(const Task& t);
// `where` names the file and line in errors (a missing or ill-typed field is an Error
// naming it).
Task task_from_json(const Json& j, const std::string& where);
std::vector<Task> read_tasks_jsonl(const std::string& path);
void write_tasks_jsonl(const std::string& path, const std::vector<Task>& tasks);  // atomic

// Built-in suites ------------------------------------------------------------------------
std::vector<std::string> suite_names();
// n tasks of `suite` for `split`, deterministic in (suite, split, n, seed). Train and
// held-out problems are disjoint by construction (see docs/tasks-format.md).
std::vector<Task> generate_suite(const std::string& suite, Split split, int64_t n, uint64_t seed);
// The split a built-in suite's problem with this canonical form belongs to.
Split split_of(const std::string& suite, const std::string& canonical);
// One line per suite: what it asks (for `dsv4 tasks list`).
std::string suite_description(const std::string& suite);

// Simulated tools --------------------------------------------------------------------------
// Result text of calling tool `name` with `arguments` (a JSON object) in the task's tool_env;
// errors (unknown tool, bad arguments) come back as result text, as a real tool would answer.
std::string run_tool(const Json& tool_env, const std::string& name, const Json& arguments);
// The calculator's arithmetic: + - * / and parentheses over integers / decimals (unary
// minus allowed). Throws Error with a message naming the position on malformed input or
// division by zero. format_number writes integers without a decimal point, other values
// with at most 6 decimals (trailing zeros dropped).
double calculate(const std::string& expression);
std::string format_number(double v);

// Graders ------------------------------------------------------------------------------------
struct ToolCallMade {
  std::string name;
  Json arguments;  // parsed JSON object
};
struct GradeResult {
  bool correct = false;
  std::string detail;  // why not, for the report
};
// Grades the final answer `content` (and, for "tool_trajectory", the calls made in order).
GradeResult grade(const Json& grader, const std::string& content, const std::vector<ToolCallMade>& calls);
// The tool calls of the assistant messages in `messages` (OpenAI tool_calls, in order), for
// grading a reply. `function.arguments` that is not a JSON object text is kept as the raw
// string (so it can never equal an expected object); a call without a function name throws
// Error naming the message.
std::vector<ToolCallMade> tool_calls_in(const Json& messages);
// Grades a reply conversation (the messages that follow the prompt, as in `targets`): the
// last assistant message's content, and every tool call made on the way.
GradeResult grade_messages(const Json& grader, const Json& messages);

}  // namespace dsv4::tasks
