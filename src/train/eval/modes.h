// Reasoning modes in `dsv4 eval`: names (tasks::mode_name), the --modes list, and the
// endpoint's reasoning_effort per mode.
#pragma once
#include <string>
#include <vector>

#include "train/tasks/task.h"

namespace dsv4::eval {

const char* mode_key(tasks::Mode m);  // "non-think" | "think-high" | "think-max"
// "non-think,think-high" -> modes in the given order; throws Error naming a bad or repeated one.
std::vector<tasks::Mode> parse_mode_list(const std::string& list);
// The endpoint's reasoning_effort for a mode: "none" | "high" | "max".
const char* reasoning_effort_of(tasks::Mode m);

}  // namespace dsv4::eval
