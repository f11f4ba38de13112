// DeepSeek-V4 chat encoder: messages -> prompt text, byte-exact with the official
// `encoding_dsv4.py` (encode_messages). See docs in spec/v4-chat-and-api.md section 2.
//
// Messages are OpenAI-style JSON objects plus the reference's extra fields
// (reasoning_content, wo_eos, task, mask, tools / response_format on system or developer
// messages, roles developer / latest_reminder / tool). Parse request JSON with
// json_py::loads so key order, floats and big integers survive exactly as Python sees them.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/error.h"
#include "text/json_py.h"

namespace dsv4::chat {

using Json = json_py::Json;

// Special-token strings as they appear in prompt and completion text.
inline constexpr std::string_view kBos = "<｜begin▁of▁sentence｜>";
inline constexpr std::string_view kEos = "<｜end▁of▁sentence｜>";
inline constexpr std::string_view kThinkStart = "<think>";
inline constexpr std::string_view kThinkEnd = "</think>";
inline constexpr std::string_view kDsml = "｜DSML｜";
inline constexpr std::string_view kUser = "<｜User｜>";
inline constexpr std::string_view kAssistant = "<｜Assistant｜>";
inline constexpr std::string_view kLatestReminder = "<｜latest_reminder｜>";

enum class ThinkingMode { Chat, Thinking };

// "chat" / "thinking" -> mode; throws Error on anything else.
ThinkingMode parse_thinking_mode(std::string_view s);

// Which checkpoint's reasoning-effort prefixes to use (the 0731 release renamed them).
enum class EffortTable {
  // April 2026 preview (the golden data): effort in {None, "high", "max"}; only "max" adds
  // a prefix; anything else is an encoder error.
  V4Preview,
  // 0731 release: effort in {"low", "high", "max"}, None/"" means "low" (no prefix);
  // "high" uses the preview's "max" text and "max" a new, stronger text.
  V4_0731,
};

// The prefix text an effort level adds after BOS in thinking mode ("" for none).
// Throws EncodeError(AssertionError) for a level the table does not know.
std::string effort_prefix(EffortTable table, const std::optional<std::string>& effort);

// How assistant tool-call `arguments` that are not a JSON-object string are rendered.
enum class ObjectArguments {
  // As the reference: json.loads(arguments) must succeed on a str; anything else (a JSON
  // object given as an object, invalid JSON, "") becomes ONE parameter named "arguments".
  Reference,
  // vLLM-style: an object given as an object renders its own keys (no wrapper). Other
  // fallbacks stay as in the reference. Use this in a server; it deliberately differs
  // from golden case tools-args-as-object.
  Natural,
};

struct EncodeOptions {
  ThinkingMode thinking_mode = ThinkingMode::Thinking;
  std::optional<std::string> reasoning_effort;  // None = not given
  bool drop_thinking = true;
  bool add_default_bos_token = true;
  Json context = nullptr;  // null or an array of already-encoded earlier messages
  EffortTable effort_table = EffortTable::V4Preview;
  ObjectArguments object_arguments = ObjectArguments::Reference;
};

// Failure of the encoder. `kind` is the Python exception the reference raises in the same
// situation (AssertionError, KeyError, TypeError, AttributeError, NotImplementedError), so
// callers can tell a bad request (all of these) from a bug, and tests can compare outcomes.
class EncodeError : public Error {
 public:
  EncodeError(std::string kind, const std::string& message)
      : Error(kind + ": " + message), kind_(std::move(kind)) {}
  const std::string& kind() const { return kind_; }

 private:
  std::string kind_;
};

// encode_messages(messages, thinking_mode, context, drop_thinking, add_default_bos_token,
// reasoning_effort) of the reference. `messages` must be an array.
std::string encode_messages(const Json& messages, const EncodeOptions& options);

// Reads the reference keyword arguments from a JSON object: thinking_mode (required),
// reasoning_effort, drop_thinking, add_default_bos_token, context. Unknown keys are an error
// (a typo would otherwise silently change the prompt).
EncodeOptions options_from_json(const Json& options);

}  // namespace dsv4::chat
