// distill.json / rl.json parsing (no torch): see post_run.h.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/file.h"
#include "text/chat_encoder.h"
#include "text/json_py.h"
#include "text/output_parser.h"
#include "train/tasks/render.h"
#include "train/tasks/task.h"
#include "text/tokenizer.h"
#include "train/post_run.h"
#include "train/tasks/render.h"

namespace dsv4::train {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Reader {
  const json& j;
  std::string source;
  fs::path base;
  std::vector<std::string> known;

  void check_known() const {
    for (auto it = j.begin(); it != j.end(); ++it)
      if (std::find(known.begin(), known.end(), it.key()) == known.end()) throw Error(source + ": unknown field " + it.key());
  }
  std::string rel(const std::string& p) const { return p.empty() || fs::path(p).is_absolute() ? p : (base / p).string(); }
  void str(const char* k, std::string& v, bool path) const {
    if (!j.contains(k)) return;
    if (!j[k].is_string()) throw Error(source + ": field " + k + " must be a string");
    v = path ? rel(j[k].get<std::string>()) : j[k].get<std::string>();
  }
  template <typename T>
  void num(const char* k, T& v, double lo, double hi) const {
    if (!j.contains(k)) return;
    if (!j[k].is_number()) throw Error(source + ": field " + k + " must be a number");
    const double d = j[k].get<double>();
    if (!(d >= lo && d <= hi))
      throw Error(source + ": field " + k + " = " + j[k].dump() + " outside [" + json(lo).dump() + ", " + json(hi).dump() + "]");
    if constexpr (std::is_integral_v<T>) {
      if (!j[k].is_number_integer()) throw Error(source + ": field " + k + " must be an integer");
      v = j[k].get<T>();
    } else {
      v = d;
    }
  }
  void flag(const char* k, bool& v) const {
    if (!j.contains(k)) return;
    if (!j[k].is_boolean()) throw Error(source + ": field " + k + " must be true or false");
    v = j[k].get<bool>();
  }
};

const std::vector<std::string> kCommon = {"out", "steps", "prompts_per_step", "max_tokens", "temperature", "lr", "weight_decay",
                                          "grad_clip", "muon", "qat", "seed", "threads", "tokenizer", "mode"};

void read_common(const Reader& rd, PostCommon& c) {
  c.source = rd.source;
  rd.str("tokenizer", c.tokenizer, true);
  rd.str("mode", c.mode, false);
  if (c.mode != "non-think" && c.mode != "think-high" && c.mode != "think-max")
    throw Error(rd.source + ": field mode must be non-think, think-high or think-max");
  rd.str("out", c.out, true);
  if (c.out.empty()) throw Error(rd.source + ": missing field out");
  rd.num("steps", c.steps, 0, 1e12);
  rd.num("prompts_per_step", c.prompts_per_step, 1, 1e6);
  rd.num("max_tokens", c.max_tokens, 1, 1e7);
  rd.num("temperature", c.temperature, 0, 100);
  rd.num("lr", c.lr, 0, 1e6);
  rd.num("weight_decay", c.weight_decay, 0, 1e3);
  rd.num("grad_clip", c.grad_clip, 0, 1e12);
  rd.flag("muon", c.muon);
  rd.flag("qat", c.qat);
  rd.num("seed", c.seed, 0, 1.8e19);
  rd.num("threads", c.threads, 0, 4096);
}

// Prompts of a domain: "prompts" (token ids) or "tasks" (task JSONL, rendered with the chat
// encoder in `mode`: the prompt messages and tools, ready for the assistant's turn).
PromptSet read_prompts(const json& j, const std::string& where, const Reader& top, const PostCommon& common) {
  PromptSet ps;
  if (j.contains("prompts")) {
    if (!j["prompts"].is_array()) throw Error(where + ": prompts must be an array of token id arrays");
    for (size_t i = 0; i < j["prompts"].size(); ++i) {
      const json& p = j["prompts"][i];
      if (!p.is_array() || p.empty()) throw Error(where + ": prompts[" + std::to_string(i) + "] must be a non-empty array of ids");
      std::vector<int64_t> ids;
      for (const json& t : p) {
        if (!t.is_number_integer() || t.get<int64_t>() < 0) throw Error(where + ": prompts[" + std::to_string(i) + "] holds a non-id");
        ids.push_back(t.get<int64_t>());
      }
      ps.prompts.push_back(ids);
    }
  }
  if (j.contains("tasks")) {
    const std::string& tok_path = common.tokenizer;
    const std::string& mode = common.mode;
    if (tok_path.empty()) throw Error(top.source + ": task prompts need field tokenizer (or a model directory with tokenizer.json)");
    chat::EncodeOptions eo;
    try {
      eo = tasks::encode_options(tasks::parse_mode(mode));
    } catch (const Error&) {
      throw Error(top.source + ": field mode must be non-think, think-high or think-max");
    }
    const Tokenizer tok = Tokenizer::load(tok_path);
    if (!j["tasks"].is_array()) throw Error(where + ": tasks must be an array of file names");
    for (const json& f : j["tasks"]) {
      if (!f.is_string()) throw Error(where + ": tasks must be an array of file names");
      const std::string path = top.rel(f.get<std::string>());
      std::ifstream in(path);
      if (!in) throw Error(path + ": cannot open");
      int64_t line_no = 0;
      for (std::string line; std::getline(in, line);) {
        ++line_no;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        const std::string w = path + ":" + std::to_string(line_no);
        nlohmann::ordered_json t;
        try {
          t = nlohmann::ordered_json::parse(line);
        } catch (const nlohmann::ordered_json::exception& e) {
          throw Error(w + ": invalid JSON: " + e.what());
        }
        if (!t.is_object() || !t.contains("messages") || !t["messages"].is_array())
          throw Error(w + ": expected a task object with messages");
        const std::string tools = t.contains("tools") ? t["tools"].dump() : "[]";
        std::string text;
        try {
          text = chat::encode_messages(chat::attach_request_tools(json_py::loads(t["messages"].dump()), json_py::loads(tools)), eo);
        } catch (const Error& e) {
          throw Error(w + ": " + e.what());
        }
        const std::vector<int32_t> ids = tok.encode(text);
        ps.prompts.emplace_back(ids.begin(), ids.end());
        ps.task_json.push_back(line);
      }
    }
  }
  if (ps.prompts.empty()) throw Error(where + ": no prompts (give prompts or tasks)");
  return ps;
}

// Without a tokenizer field, the model directory's tokenizer.json (when there is one).
void default_tokenizer(PostCommon& c, const std::string& model) {
  if (!c.tokenizer.empty()) return;
  const std::string t = (fs::path(model) / "tokenizer.json").string();
  if (fs::is_directory(model) && file_exists(t)) c.tokenizer = t;
}

json parse_json(const std::string& text, const std::string& source) {
  try {
    json j = json::parse(text);
    if (!j.is_object()) throw Error(source + ": not a JSON object");
    return j;
  } catch (const json::exception& e) {
    throw Error(source + ": not valid JSON: " + e.what());
  }
}

}  // namespace

DistillConfig parse_distill_config(const std::string& text, const std::string& source) {
  const json j = parse_json(text, source);
  Reader rd{j, source, fs::path(source).parent_path(), kCommon};
  rd.known.insert(rd.known.end(), {"student", "domains", "samples_per_prompt", "mtp_weight"});
  rd.check_known();
  DistillConfig c;
  read_common(rd, c.common);
  rd.str("student", c.student, true);
  if (c.student.empty()) throw Error(source + ": missing field student");
  default_tokenizer(c.common, c.student);
  rd.num("samples_per_prompt", c.samples_per_prompt, 1, 1e6);
  rd.num("mtp_weight", c.mtp_weight, 0, 1e3);
  if (!j.contains("domains") || !j["domains"].is_array() || j["domains"].empty())
    throw Error(source + ": field domains must be a non-empty array");
  for (size_t i = 0; i < j["domains"].size(); ++i) {
    const json& d = j["domains"][i];
    const std::string where = source + ": domains[" + std::to_string(i) + "]";
    if (!d.is_object()) throw Error(where + ": must be an object");
    for (auto it = d.begin(); it != d.end(); ++it)
      if (it.key() != "name" && it.key() != "teacher" && it.key() != "prompts" && it.key() != "tasks")
        throw Error(where + ": unknown field " + it.key());
    DistillDomain dom;
    dom.name = d.value("name", "domain" + std::to_string(i));
    if (!d.contains("teacher") || !d["teacher"].is_string()) throw Error(where + ": missing field teacher (checkpoint or model directory)");
    dom.teacher = rd.rel(d["teacher"].get<std::string>());
    dom.prompts = read_prompts(d, where, rd, c.common);
    c.domains.push_back(std::move(dom));
  }
  return c;
}

GrpoConfig parse_grpo_config(const std::string& text, const std::string& source) {
  const json j = parse_json(text, source);
  Reader rd{j, source, fs::path(source).parent_path(), kCommon};
  rd.known.insert(rd.known.end(), {"policy", "reference", "prompts", "tasks", "reward", "group_size", "updates_per_batch", "clip",
                                   "kl_weight"});
  rd.check_known();
  GrpoConfig c;
  read_common(rd, c.common);
  rd.str("policy", c.policy, true);
  if (c.policy.empty()) throw Error(source + ": missing field policy");
  default_tokenizer(c.common, c.policy);
  rd.str("reference", c.reference, true);
  rd.num("group_size", c.group_size, 2, 1e6);
  rd.num("updates_per_batch", c.updates_per_batch, 1, 1e6);
  rd.num("clip", c.clip, 0, 10);
  rd.num("kl_weight", c.kl_weight, 0, 1e6);
  c.prompts = read_prompts(j, source, rd, c.common);
  if (!j.contains("reward") || !j["reward"].is_object()) throw Error(source + ": missing field reward (object)");
  const json& r = j["reward"];
  c.reward.type = r.value("type", "");
  if (c.reward.type == "token_fraction" || c.reward.type == "contains_token") {
    if (!r.contains("token") || !r["token"].is_number_integer() || r["token"].get<int64_t>() < 0)
      throw Error(source + ": reward." + c.reward.type + " needs an integer token");
    c.reward.token = r["token"].get<int64_t>();
  } else if (c.reward.type == "grade") {
    if (c.prompts.task_json.size() != c.prompts.prompts.size())
      throw Error(source + ": reward type \"grade\" needs task prompts (field tasks), not token ids");
    for (size_t i = 0; i < c.prompts.task_json.size(); ++i) {
      const tasks::Task t = tasks::task_from_json(tasks::Json::parse(c.prompts.task_json[i]), source + ": task prompt " + std::to_string(i));
      if (!t.tools.empty())
        throw Error(source + ": task " + t.id + " offers tools: GRPO rollouts do not run tools yet (multi-turn rollouts are a later step)");
    }
  } else {
    throw Error(source + ": reward.type must be token_fraction, contains_token or grade");
  }
  return c;
}

std::function<double(size_t, const std::vector<int64_t>&)> make_grade_reward(const GrpoConfig& c) {
  if (c.common.tokenizer.empty()) throw Error(c.common.source + ": the grade reward needs field tokenizer");
  auto tok = std::make_shared<Tokenizer>(Tokenizer::load(c.common.tokenizer));
  auto graders = std::make_shared<std::vector<tasks::Json>>();
  for (size_t i = 0; i < c.prompts.task_json.size(); ++i)
    graders->push_back(tasks::task_from_json(tasks::Json::parse(c.prompts.task_json[i]), c.common.source + ": task prompt " + std::to_string(i)).grader);
  const chat::ThinkingMode mode = c.common.mode == "non-think" ? chat::ThinkingMode::Chat : chat::ThinkingMode::Thinking;
  return [tok, graders, mode](size_t prompt, const std::vector<int64_t>& completion) {
    if (prompt >= graders->size()) throw Error("grade reward: prompt " + std::to_string(prompt) + " has no task");
    std::vector<int32_t> ids;
    for (int64_t t : completion)
      if (t >= 0 && t < tok->vocab_size()) ids.push_back(static_cast<int32_t>(t));
    const chat::ParsedMessage m = chat::parse_completion_lenient(tok->decode(ids, false), mode);
    std::vector<tasks::ToolCallMade> calls;
    for (const chat::ParsedToolCall& tc : m.tool_calls) {
      tasks::ToolCallMade made;
      made.name = tc.name;
      try {
        made.arguments = tasks::Json::parse(tc.arguments);
      } catch (const tasks::Json::exception&) {
        made.arguments = tc.arguments;
      }
      calls.push_back(std::move(made));
    }
    return tasks::grade((*graders)[prompt], m.content, calls).correct ? 1.0 : 0.0;
  };
}

}  // namespace dsv4::train
