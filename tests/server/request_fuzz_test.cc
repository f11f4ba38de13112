// Fuzz loop over the server's request handling, in process: mutated OpenAI and Anthropic
// request bodies go through exactly what a handler does before the scheduler (JSON parse,
// Anthropic mapping, validation, prompt rendering + tokenization, job spec). The only allowed
// outcomes are success or an ApiError / JSON parse error (which the handler turns into a 4xx);
// any other exception, crash or sanitizer report is a finding. Also pins the status of each
// documented bad-input case.
#include <gtest/gtest.h>

#include <random>

#include "frontends/server/anthropic.h"
#include "frontends/server/chat_request.h"
#include "frontends/server/responses_request.h"

namespace dsv4::server {
namespace {

const Tokenizer& tokenizer() {
  static Tokenizer t = Tokenizer::load(std::string(DSV4_ASSETS_DIR) + "/deepseek-v4-tokenizer.json.gz");
  return t;
}

ServerInfo info() {
  ServerInfo i;
  i.context = 512;
  return i;
}

enum Api { kChat = 0, kAnthropic = 1, kResponses = 2 };

// A store holding one response ("resp_seed") that the Responses seeds continue.
ResponsesStore& store() {
  static ResponsesStore st(16, std::chrono::seconds(3600));
  static const bool filled = [] {
    StoredResponse r;
    r.response = Json::object({{"id", "resp_seed"}});
    r.messages = json_py::loads(
        R"([{"role":"user","content":"w?"},{"role":"assistant","content":"","reasoning_content":"r","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get","arguments":"{}"}}]}])");
    st.put("resp_seed", r);
    return true;
  }();
  (void)filled;
  return st;
}

// Runs one body through the handler path. Returns the HTTP status the server would answer.
int handle(const std::string& body, int api) {
  try {
    Json j = json_py::loads(body);
    if (api == kAnthropic) j = anthropic_to_openai(j);
    if (api == kResponses) j = parse_responses_request(j, store()).chat_body;
    ChatRequest r = parse_chat_request(j, info());
    ToolCallMemory memory;
    Prompt p = build_chat_prompt(r, tokenizer(), &memory);
    JobSpec s = make_job_spec(r, p, info());
    EXPECT_FALSE(s.prompt.empty());
    EXPECT_GE(s.max_tokens, 1);
    EXPECT_LE(static_cast<int64_t>(s.prompt.size()) + s.max_tokens, info().context);
    return 200;
  } catch (const ApiError& e) {
    EXPECT_GE(e.status(), 400);
    EXPECT_LT(e.status(), 500) << e.what();
    return e.status();
  } catch (const json_py::ParseError&) {
    return 400;
  }
  // anything else propagates and fails the test
}

const char* kSeeds[] = {
    R"({"model":"deepseek-v4-flash","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],"max_tokens":8,"temperature":0.7,"stop":["\n"],"seed":3})",
    R"({"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],"thinking":{"type":"disabled"},"logprobs":true,"top_logprobs":2})",
    R"({"messages":[{"role":"user","content":"w?"},{"role":"assistant","content":null,"reasoning_content":"r","tool_calls":[{"id":"c1","type":"function","function":{"name":"get","arguments":"{\"city\": \"P\"}"}}]},{"role":"tool","tool_call_id":"c1","content":"sun"}],"tools":[{"type":"function","function":{"name":"get","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],"tool_choice":"required"})",
    R"({"messages":[{"role":"user","content":"json"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"array","items":{"type":"string"}}}}}},"reasoning_effort":"max","chat_template_kwargs":{"thinking":true,"drop_thinking":false}})",
    R"({"messages":[{"role":"developer","content":"x"},{"role":"user","content":"y"},{"role":"assistant","content":"z","prefix":true}],"stream":true,"stream_options":{"include_usage":true},"tool_choice":{"type":"function","function":{"name":"f"}},"tools":[{"type":"function","function":{"name":"f"}}]})",
};
const char* kAnthropicSeeds[] = {
    R"({"model":"claude-sonnet-4-5","max_tokens":32000,"stream":true,"system":[{"type":"text","text":"You are an agent.","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":[{"type":"text","text":"fix it","cache_control":{"type":"ephemeral"}}]},{"role":"system","content":"reminder"},{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"s"},{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"ls"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","is_error":true,"content":[{"type":"text","text":"err"}]}]}],"thinking":{"type":"adaptive"},"output_config":{"effort":"max"},"context_management":{"edits":[]},"metadata":{"user_id":"u"},"tools":[{"name":"Bash","input_schema":{"type":"object","properties":{"command":{"type":"string"}}}}],"tool_choice":{"type":"auto"}})",
    R"({"model":"deepseek-v4-flash","max_tokens":16,"system":[{"type":"text","text":"sys"}],"messages":[{"role":"user","content":"Hi"}],"thinking":{"type":"enabled","budget_tokens":100}})",
    R"({"max_tokens":8,"tools":[{"name":"w","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"w"},"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"thinking","thinking":"t"},{"type":"tool_use","id":"t1","name":"w","input":{"q":1}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"ok"}]},{"type":"text","text":"go"}]}]})",
};

const char* kResponsesSeeds[] = {
    R"({"model":"deepseek-v4-flash","input":"Hi","instructions":"Be brief.","max_output_tokens":8,"reasoning":{"effort":"high","summary":"auto"},"store":false,"metadata":{"a":"b"},"truncation":"auto","user":"u"})",
    R"({"input":[{"role":"developer","content":"d"},{"type":"message","role":"user","content":[{"type":"input_text","text":"w?"}]},{"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"s"}],"encrypted_content":"dsv4r1:cmVhc29u"},{"type":"function_call","id":"fc_1","call_id":"c1","name":"get","arguments":"{\"city\": \"P\"}"},{"type":"function_call_output","call_id":"c1","output":"sun"}],"tools":[{"type":"function","name":"get","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}],"tool_choice":"auto","include":["reasoning.encrypted_content"],"parallel_tool_calls":false})",
    R"({"previous_response_id":"resp_seed","input":[{"type":"function_call_output","call_id":"call_1","output":[{"type":"input_text","text":"ok"}]}],"text":{"format":{"type":"json_schema","name":"x","schema":{"type":"object","properties":{"a":{"type":"integer"}}}}},"reasoning":{"effort":"xhigh"},"tools":[{"type":"function","name":"get"}],"tool_choice":"auto"})",
    R"({"input":[{"role":"user","content":"x"}],"tools":[{"type":"function","name":"get"}],"tool_choice":{"type":"function","name":"get"},"temperature":0.5,"top_p":0.9})",
};

std::string mutate(std::string s, std::mt19937& rng) {
  static const std::vector<std::string> pieces = {"\"", "{", "}", "[", "]", ",", ":", "null", "true", "-1", "1e999", "0",
                                                  "\"role\"", "\"tool\"", "\"content\"", "[]", "{}", "\\u0000", "\xff", "\xc3",
                                                  "\"<｜end▁of▁sentence｜>\"", "99999999999999999999999", "\"assistant\"", "\"type\""};
  const int n = 1 + static_cast<int>(rng() % 4);
  for (int k = 0; k < n && !s.empty(); ++k) {
    const size_t at = rng() % s.size();
    switch (rng() % 5) {
      case 0: s.erase(at, 1 + rng() % 8); break;
      case 1: s.insert(at, pieces[rng() % pieces.size()]); break;
      case 2: s[at] = static_cast<char>(rng() % 256); break;
      case 3: {  // duplicate a slice
        const size_t len = std::min<size_t>(s.size() - at, 1 + rng() % 40);
        s.insert(rng() % s.size(), s.substr(at, len));
        break;
      }
      default: {  // replace a token-ish run with a piece
        const size_t len = std::min<size_t>(s.size() - at, 1 + rng() % 6);
        s.replace(at, len, pieces[rng() % pieces.size()]);
      }
    }
  }
  return s;
}

// Structured mutation: swap a random value inside the parsed JSON for a value of another type.
void mutate_json(Json& j, std::mt19937& rng, int depth = 0) {
  static const Json kValues[] = {nullptr, true, 0, -5, 3.5, "x", Json::array(), Json::object(), Json::array({1, "a"}),
                                 Json::object({{"type", "function"}})};
  if ((j.is_object() || j.is_array()) && !j.empty() && depth < 6 && rng() % 4 != 0) {
    auto it = j.begin();
    std::advance(it, static_cast<long>(rng() % j.size()));
    mutate_json(*it, rng, depth + 1);
    return;
  }
  j = kValues[rng() % std::size(kValues)];
}

TEST(ServerRequestFuzz, MutatedBodiesNeverCrash) {
  std::mt19937 rng(12345);
  int ok = 0, rejected = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    const int api = iter % 4 == 3 ? kAnthropic : iter % 4 == 1 ? kResponses : kChat;
    std::string seed = api == kAnthropic   ? kAnthropicSeeds[rng() % std::size(kAnthropicSeeds)]
                       : api == kResponses ? kResponsesSeeds[rng() % std::size(kResponsesSeeds)]
                                           : kSeeds[rng() % std::size(kSeeds)];
    std::string body;
    if (iter % 2 == 0) {
      body = mutate(seed, rng);
    } else {
      Json j = json_py::loads(seed);
      for (int k = 0; k < 1 + static_cast<int>(rng() % 3); ++k) mutate_json(j, rng);
      body = j.dump();
    }
    int status = 0;
    ASSERT_NO_THROW(status = handle(body, api)) << body;
    (status == 200 ? ok : rejected)++;
  }
  // The loop must exercise both paths to mean anything.
  EXPECT_GT(ok, 100);
  EXPECT_GT(rejected, 100);
}

TEST(ServerRequestFuzz, SeedsAreValid) {
  for (const char* s : kSeeds) EXPECT_EQ(handle(s, false), 200) << s;
  for (const char* s : kAnthropicSeeds) EXPECT_EQ(handle(s, true), 200) << s;
  for (const char* s : kResponsesSeeds) EXPECT_EQ(handle(s, kResponses), 200) << s;
}

TEST(ServerRequestFuzz, BadInputStatuses) {
  auto chat = [](const std::string& extra) {
    return std::string(R"({"messages":[{"role":"user","content":"hi"}],"max_tokens":4)") + extra + "}";
  };
  EXPECT_EQ(handle("{", false), 400);
  EXPECT_EQ(handle("[]", false), 400);
  EXPECT_EQ(handle(R"({"messages":"x"})", false), 400);
  EXPECT_EQ(handle(R"({"messages":[{"role":"robot","content":"x"}]})", false), 400);
  EXPECT_EQ(handle(chat(R"(,"temperature":"hot")"), false), 400);
  EXPECT_EQ(handle(chat(R"(,"model":"gpt-x")"), false), 200);  // any name is served ...
  ServerInfo strict = info();
  strict.strict_model = true;
  std::string model;
  EXPECT_THROW(check_model_name(json_py::loads(R"({"model":"gpt-x"})"), strict, model), ApiError);  // ... unless --strict-model
  check_model_name(json_py::loads(R"({"model":"gpt-x"})"), info(), model);
  EXPECT_EQ(model, info().model_id);
  EXPECT_EQ(handle(chat(R"(,"n":3)"), false), 400);
  EXPECT_EQ(handle(chat(R"(,"reasoning_effort":"extreme")"), false), 400);
  EXPECT_EQ(handle(chat(R"(,"thinking":{"type":"maybe"})"), false), 400);
  EXPECT_EQ(handle(R"({"messages":[{"role":"user","content":"hi"}],"max_tokens":100000})", false), 200);  // clamped
  EXPECT_EQ(clamp_max_tokens(100000, 500, info()), 12);
  EXPECT_EQ(clamp_max_tokens(5, 500, info()), 5);
  EXPECT_EQ(clamp_max_tokens(-1, 500, info()), 12);
  ServerInfo capped = info();
  capped.max_output_tokens = 7;
  EXPECT_EQ(clamp_max_tokens(100000, 10, capped), 7);
  EXPECT_EQ(handle("{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}", false), 400);
  std::string long_prompt = R"({"messages":[{"role":"user","content":")";
  for (int i = 0; i < 600; ++i) long_prompt += "word ";
  EXPECT_EQ(handle(long_prompt + "\"}]}", false), 400);
  // The official API's rule for tool-call turns in thinking mode.
  const std::string tool_turn =
      R"({"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"","tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"1","content":"x"}])";
  EXPECT_EQ(handle(tool_turn + "}", false), 400);
  EXPECT_EQ(handle(tool_turn + R"(,"thinking":{"type":"disabled"}})", false), 200);
  EXPECT_EQ(handle(R"({"max_tokens":4,"messages":[{"role":"user","content":[{"type":"image","source":{}}]}]})", true), 400);
  // Responses API
  EXPECT_EQ(handle(R"({"max_tokens":4,"messages":[{"role":"user","content":"x"}],"output_config":{"effort":"huge"}})", kAnthropic), 400);
  EXPECT_EQ(handle(R"({"max_tokens":4,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"bash_20250124","name":"bash"}]})", kAnthropic), 400);
  EXPECT_EQ(handle(R"({"input":"x","previous_response_id":"resp_missing"})", kResponses), 404);
  EXPECT_EQ(handle(R"({"input":"x","tools":[{"type":"web_search"}]})", kResponses), 400);
  EXPECT_EQ(handle(R"({"input":[{"type":"reasoning","encrypted_content":"dsv4r1:###="},{"role":"user","content":"x"}]})", kResponses), 400);
  EXPECT_EQ(handle(R"({"input":[{"role":"user","content":[{"type":"input_image","image_url":"x"}]}]})", kResponses), 400);
  EXPECT_EQ(handle(R"({"input":"x","background":true})", kResponses), 400);
}

TEST(ServerRequestFuzz, ReasoningContentRoundTrips) {
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {
    std::string s(rng() % 40, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 256);
    EXPECT_EQ(decode_reasoning_content(encode_reasoning_content(s), "x"), s);
  }
  EXPECT_EQ(encode_reasoning_content("reason"), "dsv4r1:cmVhc29u");  // RFC 4648 base64 of "reason"
}

}  // namespace
}  // namespace dsv4::server
