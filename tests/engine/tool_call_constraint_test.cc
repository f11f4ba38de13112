// The forced tool call (tool_choice required / named): random walks over the allowed tokens
// of the real V4 tokenizer always end in one complete call that the official parser accepts,
// whose arguments follow the tool's schema, and whose text is exactly the chat encoder's
// rendering of that call (so the next request's prompt re-uses it token for token).
#include "engine/tool_call_constraint.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "text/chat_encoder.h"
#include "text/output_parser.h"
#include "tiny_model.h"

namespace dsv4 {
namespace {

using json_py::Json;

struct Env {
  std::shared_ptr<const Tokenizer> tok;
  std::shared_ptr<const TokenTable> table;
  int32_t eos = -1;
};

const Env& env() {
  static Env e = [] {
    const std::string dir = test::tiny_chat_model_dir();
    Env x;
    x.tok = std::make_shared<const Tokenizer>(Tokenizer::load(dir + "/tokenizer.json"));
    x.eos = x.tok->token_id("<｜end▁of▁sentence｜>");
    x.table = TokenTable::build(*x.tok, x.eos, x.tok->vocab_size());
    return x;
  }();
  return e;
}

std::vector<ToolSchema> tools() {
  return {
      ToolSchema{"get_weather", json_py::loads(R"({"type":"object","properties":{
          "city":{"type":"string","maxLength":12},
          "unit":{"type":"string","enum":["celsius","fahrenheit"]},
          "days":{"type":"integer"},
          "hourly":{"type":"boolean"}},"required":["city","days"]})")},
      ToolSchema{"get_time", json_py::loads(R"({"type":"object","properties":{}})")},
      ToolSchema{"get", Json()},  // a name that is a prefix of the others, no schema at all
  };
}

// Candidate tokens for the walks: every token of the fixed pieces, all single-byte tokens and a
// random sample of the vocabulary (scanning all 129K ids per step would make the test slow).
std::vector<int32_t> candidates(std::mt19937& rng) {
  const Env& e = env();
  std::set<int32_t> c;
  const int32_t n = static_cast<int32_t>(e.table->bytes.size());
  for (int32_t i = 0; i < n; ++i)
    if (e.table->bytes[static_cast<size_t>(i)].size() == 1) c.insert(i);
  for (const char* piece : {"\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_weather\">\n", "celsius", "fahrenheit", "Paris",
                            "<｜DSML｜parameter name=\"city\" string=\"true\">", "</｜DSML｜parameter>\n", "true", "false", "12",
                            "\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>"})
    for (int32_t t : e.tok->encode(piece)) c.insert(t);
  for (const ToolSchema& tool : tools()) {
    const std::string header = "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"" + tool.name + "\">\n";
    for (int32_t t : e.tok->encode(header + "\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>")) c.insert(t);
    if (!tool.parameters.is_object()) continue;
    for (auto it = tool.parameters["properties"].begin(); it != tool.parameters["properties"].end(); ++it) {
      const std::string s = it.value()["type"] == "string" ? "true" : "false";
      for (const std::string& before : {header, std::string("</｜DSML｜parameter>\n")})
        for (int32_t t : e.tok->encode(before + ("<｜DSML｜parameter name=\"" + it.key() + "\" string=\"" + s + "\">"))) c.insert(t);
    }
  }
  for (int32_t t : e.tok->encode("</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>")) c.insert(t);
  std::uniform_int_distribution<int32_t> any(0, n - 1);
  for (int i = 0; i < 3000; ++i) c.insert(any(rng));
  c.insert(e.eos);
  return {c.begin(), c.end()};
}

// The encoder's rendering of an assistant turn that makes `call` (what follows the prompt).
std::string rendered(const chat::ParsedToolCall& call) {
  Json user = Json::object({{"role", "user"}, {"content", "hi"}});
  Json asst = Json::object({{"role", "assistant"}, {"content", ""},
                            {"tool_calls", Json::array({Json::object({{"type", "function"},
                                                                      {"function", Json::object({{"name", call.name}, {"arguments", call.arguments}})}})})}});
  chat::EncodeOptions o;
  o.thinking_mode = chat::ThinkingMode::Chat;
  const std::string base = chat::encode_messages(Json::array({user}), o);
  const std::string full = chat::encode_messages(Json::array({user, asst}), o);
  EXPECT_EQ(full.compare(0, base.size(), base), 0);
  return full.substr(base.size());
}

TEST(ToolCallConstraint, RandomWalksMakeOneValidCanonicalCall) {
  const Env& e = env();
  std::mt19937 rng(7);
  const std::vector<int32_t> pool = candidates(rng);
  std::set<std::string> names_seen;
  int with_unit = 0, with_hourly = 0, without_unit = 0;
  for (int walk = 0; walk < 120; ++walk) {
    ToolCallConstraint c(e.table, *e.tok, tools(), 24);
    std::string text;
    int steps = 0;
    for (; steps < 400; ++steps) {
      std::vector<int32_t> ok;
      for (int32_t t : pool)
        if (c.allows(t)) ok.push_back(t);
      ASSERT_FALSE(ok.empty()) << "walk " << walk << ": no allowed token after " << text;
      const int32_t t = ok[std::uniform_int_distribution<size_t>(0, ok.size() - 1)(rng)];
      c.accept(t);
      text += e.table->bytes[static_cast<size_t>(t)];
      if (t == e.eos) break;
      if (c.done()) {
        // Only EOS from here on.
        for (int32_t u : pool) EXPECT_EQ(c.allows(u), u == e.eos) << u;
      }
    }
    ASSERT_LT(steps, 400) << "walk " << walk << " did not end: " << text;
    const chat::ParsedMessage m = chat::parse_completion_strict(text, chat::ThinkingMode::Chat);
    ASSERT_EQ(m.tool_calls.size(), 1u) << text;
    EXPECT_EQ(m.content, "") << text;
    const chat::ParsedToolCall& call = m.tool_calls[0];
    names_seen.insert(call.name);
    const Json args = json_py::loads(call.arguments);
    ASSERT_TRUE(args.is_object()) << text;
    if (call.name == "get_weather") {
      ASSERT_TRUE(args.contains("city") && args["city"].is_string()) << text;
      EXPECT_LE(args["city"].get<std::string>().size(), 12u);
      EXPECT_EQ(args["city"].get<std::string>().find('<'), std::string::npos);
      ASSERT_TRUE(args.contains("days") && args["days"].is_number_integer()) << text;
      if (args.contains("unit")) {
        ++with_unit;
        EXPECT_TRUE(args["unit"] == "celsius" || args["unit"] == "fahrenheit") << text;
      } else {
        ++without_unit;
      }
      if (args.contains("hourly")) {
        ++with_hourly;
        EXPECT_TRUE(args["hourly"].is_boolean()) << text;
      }
      for (auto it = args.begin(); it != args.end(); ++it)
        EXPECT_TRUE(it.key() == "city" || it.key() == "unit" || it.key() == "days" || it.key() == "hourly") << text;
    } else {
      EXPECT_TRUE(args.empty()) << text;
    }
    // Exactly the encoder's text for that call (schema order; EOS closes the turn).
    EXPECT_EQ(text, rendered(call) ) << "walk " << walk;
  }
  // The walks explored the choices: every tool, optional parameters written and left out.
  EXPECT_EQ(names_seen.size(), 3u);
  EXPECT_GT(with_unit, 0);
  EXPECT_GT(without_unit, 0);
  EXPECT_GT(with_hourly, 0);
}

TEST(ToolCallConstraint, RequiredParametersCannotBeSkippedNorTheCallClosedEarly) {
  const Env& e = env();
  ToolCallConstraint c(e.table, *e.tok, {tools()[0]});
  for (int32_t t : e.tok->encode("\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_weather\">\n")) c.accept(t);
  // "days" is required: its opener may not come before "city" is written, nor the close.
  const std::vector<int32_t> days = e.tok->encode("<｜DSML｜parameter name=\"days\" string=\"false\">");
  const std::vector<int32_t> close = e.tok->encode("\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>");
  const std::vector<int32_t> city = e.tok->encode("<｜DSML｜parameter name=\"city\" string=\"true\">");
  // Walk the common prefix of the openers, then the token that would pick "days" is refused.
  size_t i = 0;
  while (i < days.size() && i < city.size() && days[i] == city[i]) c.accept(days[i++]);
  ASSERT_LT(i, days.size());
  EXPECT_FALSE(c.allows(days[i]));
  EXPECT_FALSE(c.allows(close[0]));
  EXPECT_FALSE(c.allows(e.eos));
  for (; i < city.size(); ++i) c.accept(city[i]);
  // A value token may not hold '<'; the parameter may close right away (an empty string).
  for (int32_t t : e.tok->encode("Pa")) c.accept(t);
  const std::vector<int32_t> lt = e.tok->encode("<b>");
  EXPECT_FALSE(c.allows(lt[0]));
  EXPECT_THROW(c.accept(lt[0]), Error);
  // After "city", the close is still refused ("days" is required), "days" is allowed.
  const std::vector<int32_t> then_days = e.tok->encode("</｜DSML｜parameter>\n<｜DSML｜parameter name=\"days\" string=\"false\">");
  for (int32_t t : then_days) c.accept(t);
  // An integer: "1.5" is refused at the ".", the parameter cannot close before a digit.
  const std::vector<int32_t> endp = e.tok->encode("</｜DSML｜parameter>");
  EXPECT_FALSE(c.allows(endp[0]));
  for (int32_t t : e.tok->encode("3")) c.accept(t);
  EXPECT_FALSE(c.allows(e.tok->encode(".")[0]));
  EXPECT_FALSE(c.done());
  for (int32_t t : e.tok->encode("</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>")) c.accept(t);
  EXPECT_TRUE(c.done());
  EXPECT_TRUE(c.allows(e.eos));
  c.accept(e.eos);
}

TEST(ToolCallConstraint, BadToolListsAreErrors) {
  const Env& e = env();
  EXPECT_THROW(ToolCallConstraint(e.table, *e.tok, {}), Error);
  EXPECT_THROW(ToolCallConstraint(e.table, *e.tok, {ToolSchema{"", Json()}}), Error);
  // A parameter schema the JSON automaton cannot compile falls back to any JSON value.
  ToolCallConstraint c(e.table, *e.tok, {ToolSchema{"f", json_py::loads(R"({"properties":{"x":{"type":"array","minItems":3,"maxItems":1}},"required":["x"]})")}});
  for (int32_t t : e.tok->encode("\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"x\" string=\"false\">")) c.accept(t);
  for (int32_t t : e.tok->encode("null</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>")) c.accept(t);
  EXPECT_TRUE(c.done());
}

}  // namespace
}  // namespace dsv4
