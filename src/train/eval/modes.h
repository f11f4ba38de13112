// Reasoning-mode names of `dsv4 eval` (--modes, report keys): non-think, think-high,
// think-max, as tasks::mode_name spells them. Kept here so the runner, report and chart
// do not need the task library linked.
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
