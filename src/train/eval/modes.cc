#include "train/eval/modes.h"

#include <algorithm>

#include "base/error.h"
#include "base/strings.h"

namespace dsv4::eval {

const char* mode_key(tasks::Mode m) { return tasks::mode_name(m); }

const char* reasoning_effort_of(tasks::Mode m) {
  switch (m) {
    case tasks::Mode::NonThink: return "none";
    case tasks::Mode::ThinkHigh: return "high";
    case tasks::Mode::ThinkMax: return "max";
  }
  return "none";
}

std::vector<tasks::Mode> parse_mode_list(const std::string& list) {
  std::vector<tasks::Mode> out;
  for (const std::string& s : split_list(list)) {
    tasks::Mode m;
    try {
      m = tasks::parse_mode(s == "none" ? "non-think" : s);
    } catch (const Error& e) {
      throw Error(std::string("--modes: ") + e.what());
    }
    if (std::find(out.begin(), out.end(), m) != out.end()) throw Error("--modes: '" + s + "' given twice");
    out.push_back(m);
  }
  return out;
}

}  // namespace dsv4::eval
