// Encoder behaviour outside the golden set. Each expectation was worked out by hand from the
// reference encoder's source (encoding_dsv4.py), not taken from this implementation's output.
#include <gtest/gtest.h>

#include "text/chat_encoder.h"

namespace dsv4::chat {
namespace {

using json_py::loads;

const std::string BOS(kBos), EOS(kEos), U(kUser), A(kAssistant), DS(kDsml);

std::string enc(const std::string& messages_json, EncodeOptions o) { return encode_messages(loads(messages_json), o); }

EncodeOptions mode(ThinkingMode m) {
  EncodeOptions o;
  o.thinking_mode = m;
  return o;
}

TEST(ChatEncoder, ConsecutiveUserMessagesMerge) {
  // merge_tool_messages appends a user directly after a user as another text block.
  EXPECT_EQ(enc(R"([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])", mode(ThinkingMode::Chat)),
            BOS + U + "a\n\nb" + A + "</think>");
}

TEST(ChatEncoder, ToolResultWithNullContentAndEmptyArguments) {
  std::string got = enc(R"([{"role": "user", "content": "q"},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
      {"role": "tool", "tool_call_id": "c1", "content": null}])",
                        mode(ThinkingMode::Thinking));
  EXPECT_EQ(got, BOS + U + "q" + A + "</think>" + "\n\n<" + DS + "tool_calls>\n<" + DS + "invoke name=\"f\">\n\n</" + DS +
                     "invoke>\n</" + DS + "tool_calls>" + EOS + U + "<tool_result>None</tool_result>" + A + "<think>");
}

TEST(ChatEncoder, LatestReminderWithoutContentRendersNone) {
  EXPECT_EQ(enc(R"([{"role": "latest_reminder"}])", mode(ThinkingMode::Chat)), BOS + "<｜latest_reminder｜>None");
}

TEST(ChatEncoder, EmptyConversationIsJustBos) {
  EXPECT_EQ(enc("[]", mode(ThinkingMode::Thinking)), BOS);
  // The effort assertion lives in per-message rendering, so with nothing to render it never fires.
  EncodeOptions o = mode(ThinkingMode::Thinking);
  o.reasoning_effort = "low";
  EXPECT_EQ(enc("[]", o), BOS);
}

TEST(ChatEncoder, EffortTables) {
  EncodeOptions o = mode(ThinkingMode::Thinking);
  const std::string msgs = R"([{"role": "user", "content": "x"}])";
  o.reasoning_effort = "max";
  const std::string april_max = enc(msgs, o);
  EXPECT_EQ(april_max.rfind(BOS + "Reasoning Effort: Absolute maximum with no shortcuts permitted.\n", 0), 0u);
  o.effort_table = EffortTable::V4_0731;
  EXPECT_EQ(enc(msgs, o).rfind(BOS + "Reasoning Effort: Beyond maximum — exhaustive, relentless, and uncompromising.\n", 0), 0u);
  o.reasoning_effort = "high";  // 0731 "high" is the April "max" text
  EXPECT_EQ(enc(msgs, o), april_max);
  o.reasoning_effort.reset();  // None -> "low": no prefix
  EXPECT_EQ(enc(msgs, o), BOS + U + "x" + A + "<think>");
  o.reasoning_effort = "medium";
  EXPECT_THROW(enc(msgs, o), EncodeError);
  o.effort_table = EffortTable::V4Preview;
  o.reasoning_effort = "low";
  EXPECT_THROW(enc(msgs, o), EncodeError);
  o.thinking_mode = ThinkingMode::Chat;  // chat mode ignores effort, but the assertion still runs
  o.reasoning_effort = "max";
  EXPECT_EQ(enc(msgs, o), BOS + U + "x" + A + "</think>");
}

TEST(ChatEncoder, ObjectArgumentsReferenceVersusNatural) {
  const std::string msgs = R"([{"role": "user", "content": "q"}, {"role": "assistant", "content": "",
      "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"city": "Paris", "n": 2}}}]}])";
  EncodeOptions o = mode(ThinkingMode::Chat);
  std::string ref = enc(msgs, o);
  EXPECT_NE(ref.find("<" + DS + "parameter name=\"arguments\" string=\"false\">{\"city\": \"Paris\", \"n\": 2}</" + DS +
                     "parameter>"),
            std::string::npos);
  o.object_arguments = ObjectArguments::Natural;
  std::string nat = enc(msgs, o);
  EXPECT_NE(nat.find("<" + DS + "parameter name=\"city\" string=\"true\">Paris</" + DS + "parameter>\n<" + DS +
                     "parameter name=\"n\" string=\"false\">2</" + DS + "parameter>"),
            std::string::npos);
}

TEST(ChatEncoder, PythonJsonInArguments) {
  // json.loads accepts NaN and big integers; json.dumps writes them back as NaN / all digits.
  std::string got = enc(R"([{"role": "user", "content": "q"}, {"role": "assistant",
      "tool_calls": [{"function": {"name": "f", "arguments": "{\"x\": NaN, \"y\": 123456789012345678901234567890, \"z\": 1E2}"}}]}])",
                        mode(ThinkingMode::Chat));
  EXPECT_NE(got.find("name=\"x\" string=\"false\">NaN<"), std::string::npos);
  EXPECT_NE(got.find("name=\"y\" string=\"false\">123456789012345678901234567890<"), std::string::npos);
  EXPECT_NE(got.find("name=\"z\" string=\"false\">100.0<"), std::string::npos);
}

void expect_kind(const std::string& msgs, const char* kind, EncodeOptions o = mode(ThinkingMode::Chat)) {
  try {
    std::string p = enc(msgs, o);
    ADD_FAILURE() << "expected " << kind << " for " << msgs << ", got " << p;
  } catch (const EncodeError& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
  }
}

TEST(ChatEncoder, ReferenceErrors) {
  expect_kind(R"([{"role": "function", "content": "x"}])", "NotImplementedError");
  expect_kind(R"([{"content": "x"}])", "NotImplementedError");  // role None
  expect_kind(R"([{"role": "developer", "content": ""}])", "AssertionError");
  expect_kind(R"([{"role": "system", "tools": [{"type": "function"}]}])", "KeyError");
  expect_kind(R"([{"role": "user", "content": "x", "task": "summarize"}])", "AssertionError");
  expect_kind(R"([{"role": "user", "content": [{"type": "text", "text": "x"}]}])", "TypeError");
  expect_kind(R"([{"role": "user", "content": null}])", "TypeError");  // "\n\n".join([None])
  expect_kind(R"(["hello"])", "AttributeError");
  expect_kind(R"([{"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}])", "KeyError");
  expect_kind(R"([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "\"s\""}}]}])",
              "AttributeError");
  EXPECT_THROW(encode_messages(loads(R"({"role": "user"})"), mode(ThinkingMode::Chat)), EncodeError);
}

TEST(ChatEncoder, OptionsFromJson) {
  EncodeOptions o = options_from_json(loads(
      R"({"thinking_mode": "thinking", "reasoning_effort": "max", "drop_thinking": false, "add_default_bos_token": false, "context": null})"));
  EXPECT_EQ(o.thinking_mode, ThinkingMode::Thinking);
  EXPECT_EQ(o.reasoning_effort, "max");
  EXPECT_FALSE(o.drop_thinking);
  EXPECT_FALSE(o.add_default_bos_token);
  EXPECT_THROW(options_from_json(loads(R"({"thinking_mode": "fast"})")), Error);
  EXPECT_THROW(options_from_json(loads(R"({"reasoning_effort": "max"})")), Error);
  EXPECT_THROW(options_from_json(loads(R"({"thinking_mode": "chat", "tools": []})")), Error);
}

TEST(ChatEncoder, AttachRequestTools) {
  auto tools = loads(R"([{"type": "function", "function": {"name": "f"}}])");
  auto with_sys = attach_request_tools(loads(R"([{"role": "system", "content": "S", "tools": [1]}, {"role": "user"}])"), tools);
  EXPECT_EQ(with_sys[0]["tools"], tools);
  EXPECT_EQ(with_sys.size(), 2u);
  auto no_sys = attach_request_tools(loads(R"([{"role": "user", "content": "q"}])"), tools);
  ASSERT_EQ(no_sys.size(), 2u);
  EXPECT_EQ(json_py::dumps(no_sys[0]), R"({"role": "system", "tools": [{"type": "function", "function": {"name": "f"}}]})");
  // As the spec notes, the prompt then starts with BOS and a blank line before "## Tools".
  EXPECT_EQ(encode_messages(no_sys, mode(ThinkingMode::Chat)).rfind(BOS + "\n\n## Tools\n\n", 0), 0u);
  EXPECT_EQ(attach_request_tools(loads("[]"), loads("[]")), loads("[]"));
}

}  // namespace
}  // namespace dsv4::chat
