#include "train/sft_data.h"

#include "train/tasks/render.h"

#include <fstream>

#include "base/error.h"
#include "text/chat_encoder.h"
#include "text/json_py.h"

namespace dsv4::train {

using ojson = nlohmann::ordered_json;

const std::vector<std::string>& sft_mode_names() {
  static const std::vector<std::string> names = {"non-think", "think-high", "think-max"};
  return names;
}

namespace {

chat::EncodeOptions mode_options(const std::string& mode, const std::string& where) {
  try {
    return tasks::encode_options(tasks::parse_mode(mode));
  } catch (const Error& e) {
    throw Error(where + "unknown mode \"" + mode + "\" (non-think, think-high, think-max)");
  }
}

}  // namespace

Example render_sft_example(const ojson& messages, const ojson& tools, const ojson& targets, const std::string& mode,
                           const Tokenizer& tok, const std::string& where) {
  const std::string w = where.empty() ? "" : where + ": ";
  if (!messages.is_array() || messages.empty()) throw Error(w + "messages must be a non-empty array");
  if (!targets.is_array() || targets.empty()) throw Error(w + "targets[" + mode + "] must be a non-empty array");
  const chat::EncodeOptions opt = mode_options(mode, w);
  ojson all = messages;
  for (const ojson& m : targets) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      throw Error(w + "targets[" + mode + "]: every message needs a string role");
    all.push_back(m);
  }
  const json_py::Json tools_py = json_py::loads(tools.is_null() ? "[]" : tools.dump());
  auto encode_prefix = [&](size_t n) {
    ojson part = ojson::array();
    for (size_t i = 0; i < n; ++i) part.push_back(all[i]);
    json_py::Json msgs = chat::attach_request_tools(json_py::loads(part.dump()), tools_py);
    try {
      return chat::encode_messages(msgs, opt);
    } catch (const Error& e) {
      throw Error(w + "mode " + mode + ": the chat encoder rejects the conversation: " + e.what());
    }
  };
  Example ex;
  std::string whole = encode_prefix(messages.size());
  auto add = [&](const std::string& text, bool target) {
    const std::vector<int32_t> ids = tok.encode(text);
    for (int32_t id : ids) {
      ex.tokens.push_back(id);
      ex.loss.push_back(target ? 1 : 0);
    }
  };
  add(whole, false);
  for (size_t i = messages.size(); i < all.size(); ++i) {
    const std::string next = encode_prefix(i + 1);
    if (next.compare(0, whole.size(), whole) != 0)
      throw Error(w + "mode " + mode + ": the encoding of the conversation up to target message " +
                  std::to_string(i - messages.size()) + " does not extend the encoding before it");
    add(next.substr(whole.size()), all[i]["role"] == "assistant");
    whole = next;
  }
  const std::vector<int32_t> ref = tok.encode(whole);
  if (ref.size() != ex.tokens.size() || !std::equal(ref.begin(), ref.end(), ex.tokens.begin()))
    throw Error(w + "mode " + mode + ": tokenising message by message differs from tokenising the whole conversation");
  return ex;
}

SftDataStats prepare_sft_data(const std::vector<std::string>& files, const Tokenizer& tok, const std::vector<std::string>& modes,
                              const std::string& out, double val_fraction, int64_t vocab_size) {
  for (const std::string& m : modes) mode_options(m, "--modes: ");
  if (modes.empty()) throw Error("--modes: no mode");
  SftDataStats st;
  std::vector<Example> examples;
  std::vector<int64_t> task_of;  // per example: its task's index
  for (const std::string& path : files) {
    std::ifstream f(path);
    if (!f) throw Error(path + ": cannot open");
    int64_t line_no = 0;
    for (std::string line; std::getline(f, line);) {
      ++line_no;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::string where = path + ":" + std::to_string(line_no);
      ojson j;
      try {
        j = ojson::parse(line);
      } catch (const ojson::exception& e) {
        throw Error(where + ": invalid JSON: " + e.what());
      }
      if (!j.is_object()) throw Error(where + ": expected a task object");
      if (!j.contains("messages")) throw Error(where + ": missing field messages");
      const ojson tools = j.contains("tools") ? j["tools"] : ojson::array();
      if (!tools.is_array() && !tools.is_null()) throw Error(where + ": field tools must be an array");
      if (j.contains("targets") && !j["targets"].is_object()) throw Error(where + ": field targets must be an object");
      ++st.tasks;
      for (const std::string& mode : modes) {
        const ojson* t = j.contains("targets") && j["targets"].contains(mode) ? &j["targets"][mode] : nullptr;
        if (!t || (t->is_array() && t->empty())) {
          ++st.skipped;
          continue;
        }
        Example ex = render_sft_example(j["messages"], tools, *t, mode, tok, where);
        for (int64_t id : ex.tokens)
          if (id >= vocab_size)
            throw Error(where + ": token id " + std::to_string(id) + " outside the model's vocabulary of " + std::to_string(vocab_size));
        st.tokens += static_cast<int64_t>(ex.tokens.size());
        for (uint8_t l : ex.loss) st.target_tokens += l;
        examples.push_back(std::move(ex));
        task_of.push_back(st.tasks - 1);
      }
    }
  }
  if (examples.empty()) throw Error("no SFT example: no task has a target for the modes asked");
  st.examples = static_cast<int64_t>(examples.size());
  const int64_t eos = tok.token_id(chat::kEos);
  // Held out by task (all modes of a task on one side): the last val_fraction of the tasks
  // that have examples, at least one when there are two or more.
  std::vector<int64_t> with_examples;
  for (int64_t t : task_of)
    if (with_examples.empty() || with_examples.back() != t) with_examples.push_back(t);
  size_t n_val_tasks = static_cast<size_t>(static_cast<double>(with_examples.size()) * val_fraction);
  if (val_fraction > 0 && n_val_tasks == 0 && with_examples.size() >= 2) n_val_tasks = 1;
  size_t n_val = 0;
  if (n_val_tasks > 0) {
    const int64_t first_val_task = with_examples[with_examples.size() - n_val_tasks];
    for (int64_t t : task_of) n_val += t >= first_val_task;
  }
  write_example_data_split(out, examples, vocab_size, eos >= 0 ? eos : 1, n_val);
  return st;
}

}  // namespace dsv4::train
