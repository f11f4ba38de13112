// Task names (splits, modes) and the JSONL form of docs/tasks-format.md.
#include <sstream>

#include "base/error.h"
#include "base/file.h"
#include "train/tasks/task.h"

namespace dsv4::tasks {

const char* split_name(Split s) { return s == Split::Train ? "train" : "heldout"; }

Split parse_split(const std::string& s) {
  if (s == "train") return Split::Train;
  if (s == "heldout" || s == "held-out") return Split::Heldout;
  throw Error("split: expected train or heldout, got '" + s + "'");
}

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::NonThink: return "non-think";
    case Mode::ThinkHigh: return "think-high";
    case Mode::ThinkMax: return "think-max";
  }
  return "?";
}

Mode parse_mode(const std::string& s) {
  if (s == "non-think" || s == "chat") return Mode::NonThink;
  if (s == "think-high" || s == "high") return Mode::ThinkHigh;
  if (s == "think-max" || s == "max") return Mode::ThinkMax;
  throw Error("mode: expected non-think, think-high or think-max, got '" + s + "'");
}

Json task_to_json(const Task& t) {
  Json j = Json::object();
  j["id"] = t.id;
  j["suite"] = t.suite;
  j["domain"] = t.domain;
  j["split"] = split_name(t.split);
  if (!t.canonical.empty()) j["canonical"] = t.canonical;
  j["messages"] = t.messages;
  j["tools"] = t.tools;
  j["tool_env"] = t.tool_env;
  j["grader"] = t.grader;
  Json targets = Json::object();
  for (int m = 0; m < kModes; ++m) targets[mode_name(static_cast<Mode>(m))] = t.targets[m];
  j["targets"] = targets;
  return j;
}

namespace {

std::string opt_string(const Json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  if (!it->is_string()) throw Error(where + ": field '" + key + "' must be a string");
  return it->get<std::string>();
}

}  // namespace

Task task_from_json(const Json& j, const std::string& where) {
  if (!j.is_object()) throw Error(where + ": a task must be a JSON object");
  Task t;
  t.id = opt_string(j, "id", where);
  t.suite = opt_string(j, "suite", where);
  t.domain = opt_string(j, "domain", where);
  t.canonical = opt_string(j, "canonical", where);
  const std::string split = opt_string(j, "split", where);
  if (!split.empty()) {
    try {
      t.split = parse_split(split);
    } catch (const Error& e) {
      throw Error(where + ": field 'split': " + e.what());
    }
  }
  auto m = j.find("messages");
  if (m == j.end()) throw Error(where + ": missing field 'messages'");
  if (!m->is_array() || m->empty()) throw Error(where + ": field 'messages' must be a non-empty array");
  for (size_t i = 0; i < m->size(); ++i) {
    const Json& msg = (*m)[i];
    if (!msg.is_object() || !msg.contains("role") || !msg["role"].is_string())
      throw Error(where + ": field 'messages[" + std::to_string(i) + "]' must be an object with a string 'role'");
  }
  t.messages = *m;
  if (auto it = j.find("tools"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) throw Error(where + ": field 'tools' must be an array");
    t.tools = *it;
  }
  if (auto it = j.find("tool_env"); it != j.end()) {
    if (!it->is_null() && !it->is_object()) throw Error(where + ": field 'tool_env' must be an object or null");
    t.tool_env = *it;
  }
  auto g = j.find("grader");
  if (g == j.end()) throw Error(where + ": missing field 'grader'");
  if (!g->is_object() || !g->contains("type") || !(*g)["type"].is_string())
    throw Error(where + ": field 'grader' must be an object with a string 'type'");
  t.grader = *g;
  if (auto it = j.find("targets"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) throw Error(where + ": field 'targets' must be an object");
    for (auto kv = it->begin(); kv != it->end(); ++kv) {
      Mode mode;
      try {
        mode = parse_mode(kv.key());
      } catch (const Error& e) {
        throw Error(where + ": field 'targets." + kv.key() + "': " + e.what());
      }
      if (!kv.value().is_array())
        throw Error(where + ": field 'targets." + kv.key() + "' must be an array of messages");
      for (size_t i = 0; i < kv.value().size(); ++i) {
        const Json& msg = kv.value()[i];
        if (!msg.is_object() || !msg.contains("role") || !msg["role"].is_string())
          throw Error(where + ": field 'targets." + kv.key() + "[" + std::to_string(i) +
                      "]' must be an object with a string 'role'");
      }
      t.targets[static_cast<int>(mode)] = kv.value();
    }
  }
  return t;
}

std::vector<Task> read_tasks_jsonl(const std::string& path) {
  const std::string text = read_file(path);
  std::vector<Task> out;
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    Json j;
    try {
      j = Json::parse(line);
    } catch (const std::exception& e) {
      throw Error(where + ": invalid JSON: " + e.what());
    }
    out.push_back(task_from_json(j, where));
  }
  return out;
}

void write_tasks_jsonl(const std::string& path, const std::vector<Task>& tasks) {
  std::string text;
  for (const Task& t : tasks) {
    text += task_to_json(t).dump(-1, ' ', false, Json::error_handler_t::strict);
    text += '\n';
  }
  write_file_atomic(path, text);
}

}  // namespace dsv4::tasks
