// Fuzz-style robustness loop (fixed seed and iteration budget, so it is reproducible and
// fits the ASan run): mutated chat JSON into json_py::loads and the encoder, random DSML-ish
// completions into the strict, lenient and streaming parsers. Properties: no crash and no
// exception other than dsv4::Error; the streaming parser in random pieces equals the one-shot
// lenient parser; lenient tool-call arguments are valid JSON (when no raw-JSON invoke body
// was possible).
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <random>

#include "chat_test_util.h"
#include "text/chat_encoder.h"
#include "text/output_parser.h"

namespace dsv4 {
namespace {

using chat::ThinkingMode;
using json_py::Json;

int env_int(const char* name, int def);

Json random_scalar(std::mt19937& rng) {
  static const char* kStrings[] = {"",         "x",          "tool",       "user",        "assistant",
                                   "system",   "developer",  "latest_reminder", "action", "title",
                                   "<｜end▁of▁sentence｜>", "</think>", "{\"a\": 1}", "[1, 2]", "\"",
                                   "function", "call_1",     "é😀",        "{",           "max"};
  switch (rng() % 8) {
    case 0: return nullptr;
    case 1: return rng() % 2 == 0;
    case 2: return static_cast<int64_t>(rng() % 5) - 2;
    case 3: return (rng() % 1000) / 7.0;
    case 4: return json_py::make_bigint("123456789012345678901234567890");
    default: return kStrings[rng() % (sizeof kStrings / sizeof *kStrings)];
  }
}

void mutate(Json& v, std::mt19937& rng, int depth) {
  if (depth > 6) return;
  if (v.is_object() && !v.empty()) {
    auto it = v.begin();
    std::advance(it, rng() % v.size());
    switch (rng() % 5) {
      case 0: v.erase(it.key()); return;
      case 1: it.value() = random_scalar(rng); return;
      case 2: it.value() = Json::array({random_scalar(rng)}); return;
      default: mutate(it.value(), rng, depth + 1); return;
    }
  }
  if (v.is_array() && !v.empty()) {
    size_t i = rng() % v.size();
    switch (rng() % 5) {
      case 0: v.erase(i); return;
      case 1: v.push_back(v[i]); return;
      case 2: v[i] = random_scalar(rng); return;
      default: mutate(v[i], rng, depth + 1); return;
    }
  }
  v = random_scalar(rng);
}

TEST(ChatFuzz, EncoderSurvivesMutatedMessages) {
  auto cases = testutil::load_jsonl("encode_cases.jsonl");
  std::mt19937 rng(env_int("DSV4_FUZZ_SEED", 42));
  int ok = 0, errors = 0;
  const int iters = env_int("DSV4_FUZZ_ITERS", 20000) / 5;
  for (int iter = 0; iter < iters; ++iter) {
    Json c = cases[rng() % cases.size()];
    Json messages = c["messages"];
    Json options = c["options"];
    int n = 1 + rng() % 3;
    for (int k = 0; k < n; ++k) mutate(rng() % 5 == 0 ? options : messages, rng, 0);
    try {
      chat::EncodeOptions o = chat::options_from_json(options);
      o.object_arguments = rng() % 2 ? chat::ObjectArguments::Natural : chat::ObjectArguments::Reference;
      o.effort_table = rng() % 2 ? chat::EffortTable::V4_0731 : chat::EffortTable::V4Preview;
      std::string p = chat::encode_messages(messages, o);
      ASSERT_TRUE(json_py::utf8_error(p).empty());
      ++ok;
    } catch (const Error&) {
      ++errors;
    } catch (const std::exception& e) {
      FAIL() << "non-dsv4 exception: " << e.what() << "\ninput: " << json_py::dumps(messages);
    }
    // Byte-level damage to the serialised request must give a ParseError or a value.
    std::string text = json_py::dumps(messages);
    for (int k = 0; k < 3 && !text.empty(); ++k) text[rng() % text.size()] = static_cast<char>(rng() % 256);
    try {
      Json v = json_py::loads(text);
      (void)json_py::dumps(v);
    } catch (const json_py::ParseError&) {
    }
  }
  EXPECT_GT(ok, 100);  // the loop must exercise successful encodes too, not only errors
  EXPECT_GT(errors, 100);
}

std::string random_completion(std::mt19937& rng, bool allow_brace) {
  static const std::vector<std::string> kFrags = {
      "</think>", "<think>", std::string(chat::kEos), "\n\n", "\n", " ", "<｜DSML｜tool_calls>", "</｜DSML｜tool_calls>",
      "<｜DSML｜function_calls>", "<｜DSML｜invoke name=\"f\">", "<｜DSML｜invoke name=\"g", "\">", "</｜DSML｜invoke>",
      "<｜DSML｜parameter name=\"a\" string=\"true\">", "<｜DSML｜parameter name=\"b\" string=\"false\">",
      "<｜DSML｜parameter name=\"a\">", "</｜DSML｜parameter>", "/｜DSML｜parameter", "｜DSML｜", "<", ">", "\"", "x",
      "42", "null", "[1, 2]", "é", "\xE4\xBD", "\xA0", "\xff", "<｜begin▁of▁sentence｜>", "\\", "true", "\t"};
  std::string s;
  int n = rng() % 40;
  for (int i = 0; i < n; ++i) {
    const std::string& f = kFrags[rng() % kFrags.size()];
    s += f;
    if (allow_brace && rng() % 10 == 0) s += rng() % 2 ? "{" : "}";
  }
  return s;
}

// DSV4_FUZZ_ITERS / DSV4_FUZZ_SEED widen the search locally; the defaults keep CI fixed.
int env_int(const char* name, int def) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : def;
}

TEST(ChatFuzz, ParsersSurviveRandomCompletions) {
  std::mt19937 rng(env_int("DSV4_FUZZ_SEED", 7));
  const int iters = env_int("DSV4_FUZZ_ITERS", 20000);
  for (int iter = 0; iter < iters; ++iter) {
    const bool allow_brace = iter % 2 == 0;
    const std::string text = random_completion(rng, allow_brace);
    const ThinkingMode mode = rng() % 2 ? ThinkingMode::Thinking : ThinkingMode::Chat;
    try {
      (void)chat::parse_completion_strict(text, mode);
    } catch (const chat::OutputParseError&) {
    }
    chat::ParsedMessage one;
    ASSERT_NO_THROW(one = chat::parse_completion_lenient(text, mode)) << text;
    chat::StreamingParser p(mode);
    for (size_t i = 0; i < text.size();) {
      size_t n = 1 + rng() % 7;
      p.feed(std::string_view(text).substr(i, n));
      i += n;
    }
    p.finish();
    ASSERT_EQ(json_py::dumps(chat::message_to_json(p.message())), json_py::dumps(chat::message_to_json(one)))
        << "input: " << json_py::dumps(Json(text)).substr(0, 2000);
    // Invalid UTF-8 input passes through as is (callers decode tokens to valid UTF-8).
    if (!allow_brace && json_py::utf8_error(text).empty()) {
      for (const auto& call : one.tool_calls)
        ASSERT_NO_THROW(json_py::loads(call.arguments)) << call.arguments << "\ninput: " << json_py::dumps(Json(text));
    }
  }
}

// Near-well-formed completions (the grammar of spec 3.1 with tricky text in every slot, and
// occasional damage that is only checked for crashes): wherever the strict reference parser succeeds with valid-JSON arguments,
// the lenient parser must return the same message.
std::string pick(std::mt19937& rng, const std::vector<std::string>& v) { return v[rng() % v.size()]; }

std::string near_valid_completion(std::mt19937& rng, ThinkingMode mode, bool* damaged) {
  static const std::vector<std::string> kText = {"", "a", "x y", "\n", "\n\n", "<", "<b>", "\"q\"", "é😀", " ", "\n ",
                                                 "</", "｜", "<｜DSML", "\n\n<", "DSML", "{", "}", "\t"};
  static const std::vector<std::string> kValue = {"", "1", "-2.5e3", "true", "null", "[1, {\"a\": 2}]", "x", " 1 ",
                                                  "\n", "<", "</", "\"", "a<b", "\\", "é", "{\n \"k\": 1\n}", "<\n"};
  auto text = [&](int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s += pick(rng, kText);
    return s;
  };
  std::string s;
  if (mode == ThinkingMode::Thinking) s += text(rng() % 4) + "</think>";
  s += text(rng() % 4);
  if (rng() % 3) {
    s += "\n\n<｜DSML｜tool_calls>\n";
    int n_inv = 1 + rng() % 3;
    for (int i = 0; i < n_inv; ++i) {
      if (i) s += "\n";
      s += "<｜DSML｜invoke" + std::string(rng() % 5 ? " " : "  ") + "name=\"" + pick(rng, {"f", "get_x", "查询", "a b"}) + "\">\n";
      int n_par = rng() % 4;
      std::vector<std::string> names = {"a", "b", "c", "城"};
      for (int k = 0; k < n_par; ++k) {
        if (k) s += "\n";
        s += "<｜DSML｜parameter name=\"" + names[k] + "\" string=\"" + (rng() % 2 ? "true" : "false") + "\">" +
             pick(rng, kValue) + pick(rng, kValue) + "</｜DSML｜parameter>";
      }
      if (n_par == 0) s += "\n";
      s += "\n</｜DSML｜invoke>";
    }
    s += "\n</｜DSML｜tool_calls>";
  }
  if (rng() % 5) s += std::string(chat::kEos);
  // Occasional damage: drop or duplicate a random byte range.
  *damaged = rng() % 4 == 0 && !s.empty();
  if (*damaged) {
    size_t a = rng() % s.size(), n = 1 + rng() % 8;
    if (rng() % 2) s.erase(a, n);
    else s.insert(a, s.substr(a, n));
  }
  return s;
}

TEST(ChatFuzz, LenientEqualsStrictOnWellFormedOutput) {
  std::mt19937 rng(env_int("DSV4_FUZZ_SEED", 99));
  const int iters = env_int("DSV4_FUZZ_ITERS", 20000);
  int compared = 0;
  for (int iter = 0; iter < iters; ++iter) {
    const ThinkingMode mode = rng() % 2 ? ThinkingMode::Thinking : ThinkingMode::Chat;
    bool damaged = false;
    const std::string text = near_valid_completion(rng, mode, &damaged);
    chat::ParsedMessage lenient = chat::parse_completion_lenient(text, mode);
    // Damaged output may still pass the strict grammar in ways lenient reads differently on
    // purpose (e.g. a lost </parameter>: strict swallows the next invokes into the value,
    // lenient ends the value at the next DSML tag), so only undamaged output is compared.
    if (damaged) continue;
    std::optional<chat::ParsedMessage> strict;
    try {
      strict = chat::parse_completion_strict(text, mode);
    } catch (const chat::OutputParseError&) {
      continue;
    }
    bool args_valid = true;
    for (const auto& c : strict->tool_calls) {
      try {
        json_py::loads(c.arguments);
      } catch (const json_py::ParseError&) {
        args_valid = false;  // documented difference: lenient quotes invalid raw values
      }
    }
    if (!args_valid) continue;
    ++compared;
    ASSERT_EQ(json_py::dumps(chat::message_to_json(lenient)), json_py::dumps(chat::message_to_json(*strict)))
        << "input: " << json_py::dumps(Json(text));
  }
  EXPECT_GT(compared, iters / 10);
}

}  // namespace
}  // namespace dsv4
