#include "train/tasks/render.h"

#include "base/error.h"
#include "text/json_py.h"

namespace dsv4::tasks {

chat::EncodeOptions encode_options(Mode m) {
  chat::EncodeOptions o;
  o.drop_thinking = false;
  if (m == Mode::NonThink) {
    o.thinking_mode = chat::ThinkingMode::Chat;
  } else {
    o.thinking_mode = chat::ThinkingMode::Thinking;
    o.reasoning_effort = m == Mode::ThinkHigh ? "high" : "max";
  }
  return o;
}

std::string render_conversation(const Task& t, Mode m) {
  const Json& target = t.targets[static_cast<size_t>(m)];
  if (!target.is_array() || target.empty())
    throw Error("task " + t.id + ": no target for mode " + mode_name(m));
  Json all = t.messages;
  for (const Json& msg : target) all.push_back(msg);
  try {
    const json_py::Json msgs =
        chat::attach_request_tools(json_py::loads(all.dump()), json_py::loads(t.tools.is_null() ? "[]" : t.tools.dump()));
    return chat::encode_messages(msgs, encode_options(m));
  } catch (const Error& e) {
    throw Error("task " + t.id + ", mode " + mode_name(m) + ": the chat encoder rejects the conversation: " + e.what());
  }
}

}  // namespace dsv4::tasks
