// Golden checks against the official encoder/parser outputs (tests/data/chat, produced by
// encoding_dsv4.py; see its README). Nothing here is derived from this code's own output.
#include <gtest/gtest.h>

#include <random>

#include "chat_test_util.h"
#include "text/chat_encoder.h"
#include "text/output_parser.h"
#include "text/tokenizer.h"

namespace dsv4 {
namespace {

using chat::ThinkingMode;
using json_py::Json;

// A golden record as a test parameter; gtest (and ctest listings) print only its id.
struct Case {
  Json j;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.j.at("id").get<std::string>(); }

std::vector<Case> cases_of(const char* file) {
  std::vector<Case> v;
  for (auto& j : testutil::load_jsonl(file)) v.push_back({std::move(j)});
  return v;
}

std::string test_name(const Case& param) {
  const Json& c = param.j;
  std::string n = c.at("id").get<std::string>();
  for (char& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
}

// ------------------------------------------------------------------ encoder

const Tokenizer& tokenizer() {
  static const Tokenizer t = Tokenizer::load(std::string(DSV4_ASSETS_DIR) + "/deepseek-v4-tokenizer.json.gz");
  return t;
}

class EncodeGolden : public ::testing::TestWithParam<Case> {};

TEST_P(EncodeGolden, PromptOrError) {
  const Json& c = GetParam().j;
  chat::EncodeOptions opt = chat::options_from_json(c.at("options"));
  if (c.contains("error")) {
    const std::string kind = c["error"]["type"].get<std::string>();
    try {
      std::string p = chat::encode_messages(c.at("messages"), opt);
      FAIL() << "expected " << kind << ", got a prompt of " << p.size() << " bytes";
    } catch (const chat::EncodeError& e) {
      EXPECT_EQ(e.kind(), kind) << e.what();
    }
    return;
  }
  std::string prompt = chat::encode_messages(c.at("messages"), opt);
  const std::string& want = c.at("prompt").get_ref<const std::string&>();
  if (prompt != want) {
    size_t i = 0;
    while (i < prompt.size() && i < want.size() && prompt[i] == want[i]) ++i;
    FAIL() << "first difference at byte " << i << "\n got: ..." << prompt.substr(i > 40 ? i - 40 : 0, 160)
           << "\nwant: ..." << want.substr(i > 40 ? i - 40 : 0, 160);
  }
}

// The prompt encodes to the golden ids (the tokenizer adds no BOS; the text starts with it).
// One test over all cases so the tokenizer is loaded once per process.
TEST(EncodeGoldenIds, AllCases) {
  int compared = 0;
  for (const Json& c : testutil::load_jsonl("encode_cases.jsonl")) {
    if (c.contains("error")) continue;
    SCOPED_TRACE(c.at("id").get<std::string>());
    std::string prompt = chat::encode_messages(c.at("messages"), chat::options_from_json(c.at("options")));
    std::vector<int32_t> ids = tokenizer().encode(prompt);
    EXPECT_EQ(ids, c.at("token_ids").get<std::vector<int32_t>>());
    EXPECT_EQ(ids.size(), c.at("n_tokens").get<size_t>());
    ++compared;
  }
  EXPECT_EQ(compared, 49);
}

INSTANTIATE_TEST_SUITE_P(Cases, EncodeGolden, ::testing::ValuesIn(cases_of("encode_cases.jsonl")),
                         [](const auto& info) { return test_name(info.param); });

TEST(EncodeGoldenData, AllCasesPresent) {
  // Guards against silently testing nothing if the data file moves.
  EXPECT_EQ(testutil::load_jsonl("encode_cases.jsonl").size(), 51u);
  EXPECT_EQ(testutil::load_jsonl("parse_cases.jsonl").size(), 46u);
}

// ------------------------------------------------------------------ parser

ThinkingMode mode_of(const Json& c) { return chat::parse_thinking_mode(c.at("thinking_mode").get<std::string>()); }

class ParseGolden : public ::testing::TestWithParam<Case> {};

TEST_P(ParseGolden, StrictMatchesReference) {
  const Json& c = GetParam().j;
  const std::string& text = c.at("text").get_ref<const std::string&>();
  if (c.contains("error")) {
    const std::string kind = c["error"]["type"].get<std::string>();
    try {
      auto m = chat::parse_completion_strict(text, mode_of(c));
      FAIL() << "expected " << kind << ", got " << json_py::dumps(chat::message_to_json(m));
    } catch (const chat::OutputParseError& e) {
      EXPECT_EQ(e.kind(), kind) << e.what();
    }
    return;
  }
  auto m = chat::parse_completion_strict(text, mode_of(c));
  EXPECT_EQ(json_py::dumps(chat::message_to_json(m)), json_py::dumps(c.at("expected")));
}

// Where strict succeeds the lenient parser must give the same message; the one documented
// exception is an invalid string="false" value, which lenient turns into a JSON string.
class ParseGoldenValid : public ::testing::TestWithParam<Case> {};

TEST_P(ParseGoldenValid, LenientAgreesOnValidOutput) {
  const Json& c = GetParam().j;
  ASSERT_FALSE(c.contains("error"));  // error cases: see LenientErrorCases
  auto m = chat::parse_completion_lenient(c.at("text").get<std::string>(), mode_of(c));
  Json want = c.at("expected");
  if (c.at("id") == "call-invalid-json-false") {
    ASSERT_EQ(m.tool_calls.size(), 1u);
    EXPECT_EQ(m.tool_calls[0].arguments, R"({"x": "not json", "y": "{broken"})");
    EXPECT_NO_THROW(json_py::loads(m.tool_calls[0].arguments));
    return;
  }
  EXPECT_EQ(json_py::dumps(chat::message_to_json(m)), json_py::dumps(want));
}

// Feeding the text in pieces (every byte, and random splits) gives the same message as
// the one-shot lenient parser, and the deltas concatenate to that message.
TEST_P(ParseGolden, StreamingPiecewiseEqualsOneShot) {
  const Json& c = GetParam().j;
  const std::string text = c.at("text").get<std::string>();
  const ThinkingMode mode = mode_of(c);
  const std::string want = json_py::dumps(chat::message_to_json(chat::parse_completion_lenient(text, mode)));
  std::mt19937 rng(1234);
  for (int round = 0; round < 6; ++round) {
    chat::StreamingParser p(mode);
    chat::ParsedMessage acc;
    int done = 0;
    auto take = [&](const std::vector<chat::StreamDelta>& ds) {
      for (const auto& d : ds) {
        switch (d.kind) {
          case chat::StreamDelta::Kind::Reasoning: acc.reasoning_content += d.text; break;
          case chat::StreamDelta::Kind::Content: acc.content += d.text; break;
          case chat::StreamDelta::Kind::ToolCallStart:
            ASSERT_EQ(d.tool_index, static_cast<int>(acc.tool_calls.size()));
            acc.tool_calls.push_back({d.text, ""});
            break;
          case chat::StreamDelta::Kind::ToolCallArguments:
            ASSERT_EQ(d.tool_index, static_cast<int>(acc.tool_calls.size()) - 1);
            acc.tool_calls.back().arguments += d.text;
            break;
          case chat::StreamDelta::Kind::Done: ++done; break;
        }
      }
    };
    size_t i = 0;
    while (i < text.size()) {
      size_t n = round == 0 ? 1 : 1 + rng() % (round * 4);
      take(p.feed(std::string_view(text).substr(i, n)));
      i += n;
    }
    take(p.finish());
    EXPECT_EQ(done, 1);
    EXPECT_EQ(json_py::dumps(chat::message_to_json(acc)), want) << "round " << round;
    EXPECT_EQ(json_py::dumps(chat::message_to_json(p.message())), want) << "round " << round;
  }
}

// The golden token ids fed one token at a time (raw token bytes, so UTF-8 characters may
// be split across pieces, as an engine without its own UTF-8 buffering would) give the
// same message as the one-shot lenient parser, and the same as the reference where it succeeds.
TEST(ParseGoldenTokens, StreamingTokenByToken) {
  for (const Json& c : testutil::load_jsonl("parse_cases.jsonl")) {
    SCOPED_TRACE(c.at("id").get<std::string>());
    const std::string text = c.at("text").get<std::string>();
    const ThinkingMode mode = mode_of(c);
    std::string joined;
    chat::StreamingParser p(mode);
    for (int32_t id : c.at("token_ids").get<std::vector<int32_t>>()) {
      const std::string& piece = tokenizer().token_bytes(id);
      joined += piece;
      p.feed(piece);
    }
    p.finish();
    ASSERT_EQ(joined, text) << "token bytes must reassemble the text";
    EXPECT_EQ(json_py::dumps(chat::message_to_json(p.message())),
              json_py::dumps(chat::message_to_json(chat::parse_completion_lenient(text, mode))));
    if (!c.contains("error") && c.at("id") != "call-invalid-json-false") {
      EXPECT_EQ(json_py::dumps(chat::message_to_json(p.message())), json_py::dumps(c.at("expected")));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, ParseGolden, ::testing::ValuesIn(cases_of("parse_cases.jsonl")),
                         [](const auto& info) { return test_name(info.param); });

std::vector<Case> valid_parse_cases() {
  std::vector<Case> v;
  for (auto& c : cases_of("parse_cases.jsonl"))
    if (!c.j.contains("error")) v.push_back(c);
  return v;
}
INSTANTIATE_TEST_SUITE_P(Cases, ParseGoldenValid, ::testing::ValuesIn(valid_parse_cases()),
                         [](const auto& info) { return test_name(info.param); });

// The lenient outcomes chosen for the reference's error cases (documented in output_parser.h).
TEST(LenientErrorCases, ChosenOutcomes) {
  std::map<std::string, Json> cases;
  for (auto& c : testutil::load_jsonl("parse_cases.jsonl")) cases[c["id"].get<std::string>()] = c;
  auto lenient = [&](const std::string& id) {
    const Json& c = cases.at(id);
    return chat::parse_completion_lenient(c["text"].get<std::string>(), mode_of(c));
  };
  auto m = lenient("err-think-no-close");  // truncated reasoning: all of it is reasoning
  EXPECT_EQ(m.reasoning_content, "I am still thinking about");
  EXPECT_EQ(m.content, "");
  EXPECT_FALSE(m.saw_eos);
  EXPECT_FALSE(m.saw_think_end);

  m = lenient("err-think-no-close-eos");
  EXPECT_EQ(m.reasoning_content, "Only reasoning.");
  EXPECT_TRUE(m.saw_eos);

  m = lenient("err-missing-eos");
  EXPECT_EQ(m.reasoning_content, "r");
  EXPECT_EQ(m.content, "The answer is");

  m = lenient("err-calls-inside-reasoning");  // the call is recovered from the reasoning
  EXPECT_EQ(m.reasoning_content, "I'll call the tool.");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].name, "get_weather");
  EXPECT_EQ(m.tool_calls[0].arguments, R"({"city": "Paris", "days": 2})");

  m = lenient("err-calls-inside-reasoning-then-close");  // reasoning resumes, then </think>
  EXPECT_EQ(m.reasoning_content, "Thinking");
  EXPECT_EQ(m.content, "Done.");
  EXPECT_TRUE(m.saw_think_end);
  ASSERT_EQ(m.tool_calls.size(), 1u);

  m = lenient("err-think-open-in-reasoning");
  EXPECT_EQ(m.reasoning_content, "r");
  EXPECT_EQ(m.content, "a");

  m = lenient("err-think-tag-in-chat-content");
  EXPECT_EQ(m.content, "Hi");

  m = lenient("err-dsml-without-blank-line");
  EXPECT_EQ(m.content, "Text");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].arguments, R"({"a": "1"})");

  m = lenient("err-v32-function-calls");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].name, "f");

  m = lenient("err-second-calls-block");
  EXPECT_EQ(m.tool_calls.size(), 2u);

  m = lenient("err-duplicate-param");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].arguments, R"({"a": "1"})");

  m = lenient("err-bad-string-attr");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].arguments, R"({"a": "1"})");

  m = lenient("err-missing-string-attr");  // no attribute: "1" is valid JSON, pasted raw
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].arguments, R"({"a": 1})");

  m = lenient("err-truncated-in-invoke");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].arguments, R"({"city": "Par"})");
  EXPECT_TRUE(m.truncated_tool_call);

  m = lenient("err-no-newline-between-params");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].arguments, R"({"a": "1", "b": "2"})");

  m = lenient("err-eos-then-text");
  EXPECT_EQ(m.content, "Answer.");

  m = lenient("err-empty-text-think");
  EXPECT_EQ(m.reasoning_content, "");
  EXPECT_EQ(m.content, "");
}

}  // namespace
}  // namespace dsv4
