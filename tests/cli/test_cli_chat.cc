// `dsv4 render` and `dsv4 parse` end to end (the built binary, DSV4_BIN), checked against the
// official golden data, plus the error paths (exit status 1 and a message on stderr).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "chat_test_util.h"
#include "text/json_py.h"

namespace dsv4 {
namespace {

using json_py::Json;

struct Result {
  int rc;
  std::string out, err;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs `dsv4 ARGS` with `input` on stdin.
Result run(const std::string& args, const std::string& input) {
  char dir[] = "/tmp/dsv4_cli_chat_XXXXXX";
  if (!mkdtemp(dir)) throw std::runtime_error("mkdtemp failed");
  std::string d = dir;
  std::ofstream(d + "/in", std::ios::binary) << input;
  std::string cmd = std::string(DSV4_BIN) + " " + args + " < " + d + "/in > " + d + "/out 2> " + d + "/err";
  int status = std::system(cmd.c_str());
  Result r{WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(d + "/out"), slurp(d + "/err")};
  std::system(("rm -rf " + d).c_str());
  return r;
}

std::map<std::string, Json> by_id(const std::string& file) {
  std::map<std::string, Json> m;
  for (auto& c : testutil::load_jsonl(file)) m[c["id"].get<std::string>()] = c;
  return m;
}

std::string request(const Json& c) {
  return json_py::dumps(Json::object({{"messages", c.at("messages")}, {"options", c.at("options")}}));
}

TEST(CliRender, GoldenPromptsAndIds) {
  auto cases = by_id("encode_cases.jsonl");
  for (const char* id : {"official-1", "official-3", "tools-args-types", "context-continuation", "no-bos",
                         "single-user-think-max", "tools-odd-schema"}) {
    SCOPED_TRACE(id);
    const Json& c = cases.at(id);
    Result r = run("render", request(c));
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out, c.at("prompt").get<std::string>());  // exact bytes, no added newline
    Result ids = run(std::string("render --ids --tokenizer ") + DSV4_ASSETS_DIR + "/deepseek-v4-tokenizer.json.gz", request(c));
    ASSERT_EQ(ids.rc, 0) << ids.err;
    EXPECT_EQ(json_py::loads(ids.out), c.at("token_ids"));
  }
}

TEST(CliRender, EncoderErrorExitsOne) {
  auto cases = by_id("encode_cases.jsonl");
  Result r = run("render", request(cases.at("error-effort-low")));
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("Invalid reasoning effort: low"), std::string::npos) << r.err;
  r = run("render", request(cases.at("error-args-json-array")));
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("'list' object has no attribute 'items'"), std::string::npos) << r.err;
}

TEST(CliRender, BadInput) {
  Result r = run("render", "{\"messages\": [");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("invalid JSON"), std::string::npos) << r.err;

  r = run("render", "{\"messages\": [{\"role\": \"user\", \"content\": \"a\xff\"}], \"options\": {\"thinking_mode\": \"chat\"}}");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("invalid UTF-8 at byte"), std::string::npos) << r.err;

  r = run("render", "{\"messages\": []}");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("thinking_mode is required"), std::string::npos) << r.err;

  r = run("render", "{\"messages\": [], \"options\": {\"thinking_mode\": \"chat\", \"drop_thinkin\": false}}");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("unknown key \"drop_thinkin\""), std::string::npos) << r.err;

  r = run("render --ids", "{\"messages\": [], \"options\": {\"thinking_mode\": \"chat\"}}");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("--tokenizer"), std::string::npos) << r.err;
}

TEST(CliParse, GoldenMessagesAndErrors) {
  auto cases = by_id("parse_cases.jsonl");
  for (const char* id : {"official-1-tool-turn", "think-unicode", "call-string-escapes", "chat-basic", "call-no-eos"}) {
    SCOPED_TRACE(id);
    const Json& c = cases.at(id);
    Result r = run("parse --thinking-mode " + c.at("thinking_mode").get<std::string>(), c.at("text").get<std::string>());
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(json_py::loads(r.out), c.at("expected"));
  }
  const Json& bad = cases.at("err-missing-eos");
  Result r = run("parse --thinking-mode thinking", bad.at("text").get<std::string>());
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("missing EOS"), std::string::npos) << r.err;
  r = run("parse --thinking-mode thinking --lenient", bad.at("text").get<std::string>());
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(json_py::loads(r.out)["content"], "The answer is");
}

TEST(CliParse, BadInput) {
  Result r = run("parse --thinking-mode chat", "ok\xC3<｜end▁of▁sentence｜>");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("invalid UTF-8 at byte 2"), std::string::npos) << r.err;
  r = run("parse --thinking-mode maybe", "x");
  EXPECT_NE(r.rc, 0);
  r = run("parse", "x");
  EXPECT_NE(r.rc, 0);
}

// Render a conversation, then parse the assistant turn the model would produce, and
// render again with that turn appended: the second prompt extends the first.
TEST(CliRoundTrip, ParsedTurnRendersBack) {
  auto parse_cases = by_id("parse_cases.jsonl");
  const Json& pc = parse_cases.at("think-content-and-call");
  Result parsed = run("parse --thinking-mode thinking", pc.at("text").get<std::string>());
  ASSERT_EQ(parsed.rc, 0) << parsed.err;
  Json msg = json_py::loads(parsed.out);
  Json messages = Json::array({Json::object({{"role", "user"}, {"content", "Weather in Paris?"}})});
  Json options = Json::object({{"thinking_mode", "thinking"}});
  Result first = run("render", json_py::dumps(Json::object({{"messages", messages}, {"options", options}})));
  ASSERT_EQ(first.rc, 0) << first.err;
  messages.push_back(msg);
  Result second = run("render", json_py::dumps(Json::object({{"messages", messages}, {"options", options}})));
  ASSERT_EQ(second.rc, 0) << second.err;
  // The prompt ended with "<think>"; the rendered turn is the model's text back, byte for byte.
  EXPECT_EQ(second.out, first.out + pc.at("text").get<std::string>());
}

}  // namespace
}  // namespace dsv4
