// The task library's tools and graders for the runner.
#include "train/eval/runner.h"

namespace dsv4::eval {

TaskOps default_task_ops() {
  TaskOps ops;
  ops.run_tool = [](const Json& env, const std::string& name, const Json& args) { return tasks::run_tool(env, name, args); };
  ops.grade = [](const Json& grader, const std::string& content, const std::vector<tasks::ToolCallMade>& calls) {
    return tasks::grade(grader, content, calls);
  };
  return ops;
}

}  // namespace dsv4::eval
