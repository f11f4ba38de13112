// Graders (each shown to accept the right answer and reject wrong ones), the calculator's
// parser (incl. malformed expressions) and the simulated tools.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "base/error.h"
#include "train/tasks/task.h"

namespace dsv4::tasks {
namespace {

bool ok(const Json& g, const std::string& content, const std::vector<ToolCallMade>& calls = {}) {
  return grade(g, content, calls).correct;
}

TEST(TasksGrader, Exact) {
  const Json g = {{"type", "exact"}, {"answer", "APPLE, APPLE"}};
  EXPECT_TRUE(ok(g, "APPLE, APPLE"));
  EXPECT_TRUE(ok(g, "  APPLE, APPLE\n"));
  EXPECT_FALSE(ok(g, "apple, apple"));
  EXPECT_FALSE(ok(g, "APPLE, APPLE, APPLE"));
  EXPECT_FALSE(ok(g, ""));
  const Json ci = {{"type", "exact"}, {"answer", "Yes"}, {"case_insensitive", true}};
  EXPECT_TRUE(ok(ci, "yes"));
  EXPECT_FALSE(ok(ci, "no"));
  EXPECT_THROW(grade(Json{{"type", "exact"}}, "x", {}), Error);
}

TEST(TasksGrader, NumericTakesTheLastNumber) {
  const Json g = {{"type", "numeric"}, {"answer", "1234"}, {"tolerance", 0}};
  EXPECT_TRUE(ok(g, "The answer is 1234."));
  EXPECT_TRUE(ok(g, "12 + 1222 = 1234"));
  EXPECT_TRUE(ok(g, "The answer is 1,234."));
  EXPECT_FALSE(ok(g, "1234 is wrong, it is 1235."));
  EXPECT_FALSE(ok(g, "The answer is 123."));
  EXPECT_FALSE(ok(g, "no idea"));
  EXPECT_FALSE(ok(g, "The answer is 1234.5"));
  const Json neg = {{"type", "numeric"}, {"answer", "-7"}};
  EXPECT_TRUE(ok(neg, "It prints -7."));
  EXPECT_FALSE(ok(neg, "It prints 7."));
  const Json tol = {{"type", "numeric"}, {"answer", 3.5}, {"tolerance", 0.01}};
  EXPECT_TRUE(ok(tol, "about 3.505"));
  EXPECT_FALSE(ok(tol, "about 3.52"));
  EXPECT_THROW(grade(Json{{"type", "numeric"}, {"answer", "abc"}}, "1", {}), Error);
  EXPECT_THROW(grade(Json{{"type", "numeric"}, {"answer", "1"}, {"tolerance", -1}}, "1", {}), Error);
}

TEST(TasksGrader, Regex) {
  const Json g = {{"type", "regex"}, {"pattern", "(?i)\\bdsv4 default model\\b"}};
  EXPECT_TRUE(ok(g, "Hello! I am the dsv4 default model, a small model."));
  EXPECT_TRUE(ok(g, "I AM THE DSV4 DEFAULT MODEL"));
  EXPECT_FALSE(ok(g, "I am ChatGPT."));
  EXPECT_FALSE(ok(g, "dsv4 default models"));
  const Json anchored = {{"type", "regex"}, {"pattern", "^[A-Z]+$"}};
  EXPECT_TRUE(ok(anchored, "ABC"));
  EXPECT_FALSE(ok(anchored, "ABC d"));
  EXPECT_FALSE(ok(anchored, "\xff\xfe"));  // invalid UTF-8 never matches
  try {
    grade(Json{{"type", "regex"}, {"pattern", "(unclosed"}}, "x", {});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pattern"), std::string::npos);
  }
}

TEST(TasksGrader, JsonSchema) {
  const Json schema = Json::parse(R"({
    "type": "object", "required": ["name", "age"], "additionalProperties": false,
    "properties": {"name": {"type": "string", "const": "Ana", "minLength": 2, "maxLength": 5, "pattern": "^A"},
                   "age": {"type": "integer", "minimum": 0, "maximum": 150}}})");
  const Json g = {{"type", "json_schema"}, {"schema", schema}};
  EXPECT_TRUE(ok(g, R"({"name": "Ana", "age": 34})"));
  EXPECT_TRUE(ok(g, "```json\n{\"name\": \"Ana\", \"age\": 34}\n```"));
  EXPECT_FALSE(ok(g, R"({"name": "Ana"})"));                          // required
  EXPECT_FALSE(ok(g, R"({"name": "Ana", "age": 34, "x": 1})"));       // additionalProperties
  EXPECT_FALSE(ok(g, R"({"name": "Ben", "age": 34})"));               // const
  EXPECT_FALSE(ok(g, R"({"name": "Ana", "age": 34.5})"));             // integer
  EXPECT_FALSE(ok(g, R"({"name": "Ana", "age": 200})"));              // maximum
  EXPECT_FALSE(ok(g, R"({"name": "Ana", "age": -1})"));               // minimum
  EXPECT_FALSE(ok(g, R"({"name": "Ana", "age": "34"})"));             // type
  EXPECT_FALSE(ok(g, R"(["Ana", 34])"));                              // type object
  EXPECT_FALSE(ok(g, R"({"name": "Ana", "age": 34} extra)"));         // one value
  EXPECT_FALSE(ok(g, "The JSON is {\"name\": \"Ana\", \"age\": 34}"));  // one value only
  const Json strs = {{"type", "json_schema"},
                     {"schema", Json::parse(R"({"type": "array", "minItems": 2, "maxItems": 3,
                        "items": {"type": "string", "enum": ["red", "blue", "green"], "minLength": 3, "maxLength": 5, "pattern": "e"}})")}};
  EXPECT_TRUE(ok(strs, R"(["red", "blue"])"));
  EXPECT_FALSE(ok(strs, R"(["red"])"));                               // minItems
  EXPECT_FALSE(ok(strs, R"(["red", "red", "red", "red"])"));          // maxItems
  EXPECT_FALSE(ok(strs, R"(["red", "pink"])"));                       // enum
  EXPECT_FALSE(ok(strs, R"(["red", 3])"));                            // items type
  const Json len = {{"type", "json_schema"}, {"schema", Json::parse(R"({"type": "string", "minLength": 2, "maxLength": 3})")}};
  EXPECT_TRUE(ok(len, "\"ab\""));
  EXPECT_FALSE(ok(len, "\"a\""));
  EXPECT_FALSE(ok(len, "\"abcd\""));
  const Json pat = {{"type", "json_schema"}, {"schema", Json::parse(R"({"type": "string", "pattern": "^[a-z]+$"})")}};
  EXPECT_FALSE(ok(pat, "\"Ab\""));
  const Json multi = {{"type", "json_schema"}, {"schema", Json::parse(R"({"type": ["number", "null"]})")}};
  EXPECT_TRUE(ok(multi, "null"));
  EXPECT_TRUE(ok(multi, "2.5"));
  EXPECT_FALSE(ok(multi, "true"));
  // A keyword outside the subset is an error, not a silent pass.
  EXPECT_THROW(grade(Json{{"type", "json_schema"}, {"schema", Json{{"oneOf", Json::array()}}}}, "1", {}), Error);
}

TEST(TasksGrader, ToolTrajectory) {
  const Json g = Json::parse(R"({"type": "tool_trajectory", "answer": "154",
    "calls": [{"name": "lookup", "arguments": {"key": "price of lamp"}},
              {"name": "calculator", "arguments": {"expression": "3 * 24"}}]})");
  const std::vector<ToolCallMade> right = {{"lookup", Json{{"key", "price of lamp"}}},
                                           {"calculator", Json{{"expression", "3 * 24"}}}};
  EXPECT_TRUE(ok(g, "The answer is 154.", right));
  EXPECT_FALSE(ok(g, "The answer is 155.", right));
  EXPECT_FALSE(ok(g, "The answer is 154.", {right[0]}));                      // too few
  EXPECT_FALSE(ok(g, "The answer is 154.", {right[1], right[0]}));            // order
  EXPECT_FALSE(ok(g, "The answer is 154.", {right[0], {"calculator", Json{{"expression", "3*25"}}}}));
  EXPECT_FALSE(ok(g, "The answer is 154.", {right[0], {"lookup", Json{{"expression", "3 * 24"}}}}));
  EXPECT_FALSE(ok(g, "The answer is 154.", {right[0], right[1], right[1]}));  // too many
}

TEST(TasksGrader, GradeMessagesCollectsCallsAndTheLastAnswer) {
  const Json g = Json::parse(R"({"type": "tool_trajectory", "answer": "72",
    "calls": [{"name": "calculator", "arguments": {"expression": "3 * 24"}}]})");
  const Json reply = Json::parse(R"([
    {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function",
      "function": {"name": "calculator", "arguments": "{\"expression\": \"3 * 24\"}"}}]},
    {"role": "tool", "content": "72"},
    {"role": "assistant", "content": "The answer is 72."}])");
  EXPECT_TRUE(grade_messages(g, reply).correct);
  const auto calls = tool_calls_in(reply);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].name, "calculator");
  EXPECT_EQ(calls[0].arguments, Json({{"expression", "3 * 24"}}));
  Json wrong = reply;
  wrong[2]["content"] = "The answer is 73.";
  EXPECT_FALSE(grade_messages(g, wrong).correct);
  Json no_calls = Json::array({reply[2]});
  EXPECT_FALSE(grade_messages(g, no_calls).correct);
  EXPECT_FALSE(grade_messages(g, Json::array()).correct);
  Json bad = reply;
  bad[0]["tool_calls"][0]["function"].erase("name");
  EXPECT_THROW(tool_calls_in(bad), Error);
  Json raw = reply;
  raw[0]["tool_calls"][0]["function"]["arguments"] = "3 * 24";
  EXPECT_EQ(tool_calls_in(raw)[0].arguments, Json("3 * 24"));
  EXPECT_FALSE(grade_messages(g, raw).correct);
}

TEST(TasksGrader, UnknownTypeIsAnError) {
  EXPECT_THROW(grade(Json{{"type", "fuzzy"}}, "x", {}), Error);
  EXPECT_THROW(grade(Json::object(), "x", {}), Error);
  EXPECT_THROW(grade(Json::array(), "x", {}), Error);
}

TEST(TasksCalculator, Arithmetic) {
  EXPECT_EQ(calculate("1 + 2 * 3"), 7);
  EXPECT_EQ(calculate("(1 + 2) * 3"), 9);
  EXPECT_EQ(calculate("10 - 4 - 3"), 3);
  EXPECT_EQ(calculate("100 / 10 / 5"), 2);
  EXPECT_EQ(calculate("-3 + 5"), 2);
  EXPECT_EQ(calculate("-(2 + 3) * 2"), -10);
  EXPECT_EQ(calculate("2 * -3"), -6);
  EXPECT_DOUBLE_EQ(calculate("1.5 * 4"), 6.0);
  EXPECT_DOUBLE_EQ(calculate(".5 + 0.25"), 0.75);
  EXPECT_EQ(calculate(" 3 * 24 + 2 * 41 "), 154);
  EXPECT_EQ(format_number(154), "154");
  EXPECT_EQ(format_number(-10), "-10");
  EXPECT_EQ(format_number(7.0 / 2), "3.5");
  EXPECT_EQ(format_number(1.0 / 3), "0.333333");
}

TEST(TasksCalculator, MalformedExpressionsAreErrors) {
  for (const char* bad : {"", "   ", "1 +", "(1 + 2", "1 + 2)", "1 / 0", "2 ** 3", "1.2.3", "abc", "2 x 3",
                          "()", "1 2", ".", "--", "1e5", "(((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((1"}) {
    EXPECT_THROW(calculate(bad), Error) << bad;
  }
  try {
    calculate("1 + * 2");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("position 5"), std::string::npos) << e.what();
  }
}

// Random strings over the calculator's alphabet: a finite value or an Error, never a crash
// (run under ASan / UBSan too). Results of well-formed sums are checked against a plain sum.
TEST(TasksCalculator, FuzzNeverCrashes) {
  const std::string alphabet = "0123456789.+-*/() x";
  uint64_t st = 12345;
  int ok_count = 0;
  for (int i = 0; i < 5000; ++i) {
    st = st * 6364136223846793005ull + 1442695040888963407ull;
    std::string e;
    const int len = static_cast<int>((st >> 33) % 24);
    for (int k = 0; k < len; ++k) {
      st = st * 6364136223846793005ull + 1442695040888963407ull;
      e += alphabet[(st >> 33) % alphabet.size()];
    }
    try {
      const double v = calculate(e);
      EXPECT_TRUE(std::isfinite(v)) << e;
      ++ok_count;
    } catch (const Error&) {
    }
  }
  EXPECT_GT(ok_count, 0);
  for (int a = 0; a < 50; ++a)
    for (int b = 0; b < 50; b += 7) EXPECT_EQ(calculate(std::to_string(a) + " + " + std::to_string(b)), a + b);
}

TEST(TasksTools, RunTool) {
  const Json env = Json::parse(R"({"calculator": true, "lookup": {"price of lamp": "24"},
                                   "files": {"notes/b.txt": "B", "notes/a.txt": "width: 12"}})");
  EXPECT_EQ(run_tool(env, "calculator", Json{{"expression", "3 * 24"}}), "72");
  EXPECT_EQ(run_tool(env, "calculator", Json{{"expression", "1 / 0"}}).rfind("error: division by zero", 0), 0u);
  EXPECT_EQ(run_tool(env, "calculator", Json::object()).rfind("error:", 0), 0u);
  EXPECT_EQ(run_tool(env, "calculator", Json{{"expression", 3}}).rfind("error:", 0), 0u);
  EXPECT_EQ(run_tool(env, "lookup", Json{{"key", "price of lamp"}}), "24");
  EXPECT_EQ(run_tool(env, "lookup", Json{{"key", "price of sofa"}}), "error: no entry for 'price of sofa'");
  EXPECT_EQ(run_tool(env, "list_files", Json::object()), "notes/a.txt\nnotes/b.txt");
  EXPECT_EQ(run_tool(env, "read_file", Json{{"path", "notes/a.txt"}}), "width: 12");
  EXPECT_EQ(run_tool(env, "read_file", Json{{"path", "x"}}), "error: no such file 'x'");
  EXPECT_EQ(run_tool(env, "shell", Json::object()), "error: unknown tool 'shell'");
  EXPECT_EQ(run_tool(Json::object(), "calculator", Json{{"expression", "1"}}).rfind("error:", 0), 0u);
  EXPECT_EQ(run_tool(nullptr, "lookup", Json{{"key", "a"}}).rfind("error:", 0), 0u);
  EXPECT_EQ(run_tool(env, "lookup", Json::array()).rfind("error:", 0), 0u);
}

}  // namespace
}  // namespace dsv4::tasks
