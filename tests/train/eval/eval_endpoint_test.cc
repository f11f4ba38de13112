// The endpoint backend end to end against a mock OpenAI-compatible server started here on a
// free loopback port. The mock answers from a script keyed on the user prompt: the tool task
// first gets a tool call and, once the tool result comes back, the final answer; one math
// task right, one wrong; two prompts get HTTP 500 and invalid JSON. The test then inspects
// the requests the mock received.
#include <gtest/gtest.h>
#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mutex>
#include <thread>

#include "base/error.h"
#include "train/eval/endpoint.h"
#include "train/eval/report.h"

namespace dsv4::eval {
namespace {

using tasks::Mode;

std::vector<tasks::Task> read_fixture(const std::string& name) {
  return tasks::read_tasks_jsonl(std::string(DSV4_TEST_DATA_DIR) + "/eval/" + name);
}

Json reply_with(const Json& message, int64_t tokens, int64_t reasoning_tokens) {
  return Json{{"id", "x"},
              {"object", "chat.completion"},
              {"choices", Json::array({Json{{"index", 0}, {"message", message}, {"finish_reason", "stop"}}})},
              {"usage", {{"prompt_tokens", 5}, {"completion_tokens", tokens}, {"completion_tokens_details", {{"reasoning_tokens", reasoning_tokens}}}}}};
}

class MockServer {
 public:
  MockServer() {
    svr_.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) { handle(req, res); });
    svr_.Get("/v1/models", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"object":"list","data":[{"id":"mock"}]})", "application/json");
    });
    port_ = svr_.bind_to_any_port("127.0.0.1");
    if (port_ <= 0) throw Error("mock server: cannot bind");
    thread_ = std::thread([this] { svr_.listen_after_bind(); });
  }
  ~MockServer() {
    svr_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<Json> requests() {
    std::lock_guard<std::mutex> l(mu_);
    return requests_;
  }
  std::vector<std::string> auth() {
    std::lock_guard<std::mutex> l(mu_);
    return auth_;
  }

 private:
  void handle(const httplib::Request& req, httplib::Response& res) {
    const Json body = Json::parse(req.body);
    {
      std::lock_guard<std::mutex> l(mu_);
      requests_.push_back(body);
      auth_.push_back(req.get_header_value("Authorization"));
    }
    const Json& msgs = body.at("messages");
    const std::string user = msgs.at(0).at("content");
    const bool think = body.at("reasoning_effort") != "none";
    const std::string why = think ? "thinking about: " + user : "";
    if (user.find("capital") != std::string::npos) {
      if (msgs.back().at("role") == "tool") {
        const std::string result = msgs.back().at("content");
        res.set_content(reply_with(Json{{"role", "assistant"}, {"content", "The capital is " + result + "."}, {"reasoning_content", "the tool said " + result}}, 12, 4).dump(),
                        "application/json");
      } else {
        Json call = {{"id", "call_abc"}, {"type", "function"}, {"function", {{"name", "lookup"}, {"arguments", R"({"key": "france"})"}}}};
        res.set_content(
            reply_with(Json{{"role", "assistant"}, {"content", nullptr}, {"reasoning_content", "I should look it up."}, {"tool_calls", Json::array({call})}}, 9, 5)
                .dump(),
            "application/json");
      }
    } else if (user.find("2+3") != std::string::npos) {
      res.set_content(reply_with(Json{{"role", "assistant"}, {"content", "5"}, {"reasoning_content", why}}, 3, think ? 2 : 0).dump(), "application/json");
    } else if (user.find("4+4") != std::string::npos) {
      res.set_content(reply_with(Json{{"role", "assistant"}, {"content", "9"}, {"reasoning_content", why}}, 3, think ? 2 : 0).dump(), "application/json");
    } else if (user == "fail-500") {
      res.status = 500;
      res.set_content(R"({"error":{"message":"mock failure"}})", "application/json");
    } else {
      res.set_content("{not json", "application/json");
    }
  }

  httplib::Server svr_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<Json> requests_;
  std::vector<std::string> auth_;
};

TEST(EvalEndpoint, ToolLoopGradingAndRequests) {
  MockServer mock;
  EndpointOptions o;
  o.url = mock.url() + "/v1";
  o.api_key = "sk-test";
  o.model = "mock-model";
  o.concurrency = 3;
  o.max_tokens = 64;
  EndpointBackend backend(o);
  backend.check_reachable();
  const auto tasks = read_fixture("tasks.jsonl");
  EvalOptions eo;
  eo.modes = {Mode::NonThink, Mode::ThinkHigh};
  int64_t last_done = 0;
  const auto records = run_eval(backend, tasks, eo, default_task_ops(), [&](const TaskRecord&, int64_t done, int64_t total) {
    EXPECT_EQ(done, last_done + 1);
    EXPECT_EQ(total, 6);
    last_done = done;
  });
  EXPECT_EQ(last_done, 6);
  ASSERT_EQ(records.size(), 6u);
  // Task order, modes within a task, whatever the concurrency.
  for (size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(records[i].id, tasks[i / 2].id);
    EXPECT_EQ(records[i].mode, eo.modes[i % 2]);
    EXPECT_TRUE(records[i].error.empty()) << records[i].error;
  }
  // The tool task: one call with the tool's result, two turns, tokens summed over both.
  for (int k : {0, 1}) {
    const TaskRecord& t = records[k];
    EXPECT_TRUE(t.correct) << t.detail << " / " << t.answer;
    EXPECT_EQ(t.answer, "The capital is Paris.");
    EXPECT_EQ(t.rounds, 2);
    EXPECT_EQ(t.completion_tokens, 21);
    EXPECT_EQ(t.reasoning_tokens, 9);
    ASSERT_EQ(t.calls.size(), 1u);
    EXPECT_EQ(t.calls[0]["name"], "lookup");
    EXPECT_EQ(t.calls[0]["arguments"], Json({{"key", "france"}}));
    EXPECT_EQ(t.calls[0]["result"], "Paris");
  }
  EXPECT_TRUE(records[2].correct);
  EXPECT_TRUE(records[3].correct);
  EXPECT_FALSE(records[4].correct);
  EXPECT_FALSE(records[5].correct);
  EXPECT_EQ(records[4].answer, "9");

  // What the server saw: 8 requests (2 per tool conversation, 1 per other).
  const auto reqs = mock.requests();
  ASSERT_EQ(reqs.size(), 8u);
  for (const std::string& a : mock.auth()) EXPECT_EQ(a, "Bearer sk-test");
  int continued = 0, effort_none = 0, effort_high = 0;
  for (const Json& b : reqs) {
    EXPECT_EQ(b["model"], "mock-model");
    EXPECT_EQ(b["max_tokens"], 64);
    EXPECT_EQ(b["stream"], false);
    effort_none += b["reasoning_effort"] == "none";
    effort_high += b["reasoning_effort"] == "high";
    const Json& m = b["messages"];
    if (m.back()["role"] != "tool") continue;
    ++continued;
    // The assistant turn came back with its reasoning and tool call, then the tool result.
    ASSERT_EQ(m.size(), 3u);
    EXPECT_EQ(m[1]["role"], "assistant");
    EXPECT_EQ(m[1]["reasoning_content"], "I should look it up.");
    ASSERT_EQ(m[1]["tool_calls"].size(), 1u);
    EXPECT_EQ(m[1]["tool_calls"][0]["id"], "call_abc");
    EXPECT_EQ(m[1]["tool_calls"][0]["function"]["name"], "lookup");
    EXPECT_EQ(m[2]["tool_call_id"], "call_abc");
    EXPECT_EQ(m[2]["content"], "Paris");
    EXPECT_EQ(b["tools"].size(), 1u);
  }
  EXPECT_EQ(continued, 2);
  EXPECT_EQ(effort_none, 4);
  EXPECT_EQ(effort_high, 4);

  ReportInfo info;
  info.modes = eo.modes;
  const Json rep = report_json(info, records, true);
  EXPECT_EQ(rep["overall"]["correct"], 4);
  EXPECT_EQ(rep["results"][0]["suite"], "tools");
  EXPECT_EQ(rep["results"][0]["accuracy"], 1.0);
  EXPECT_EQ(rep["results"][2]["suite"], "math");
  EXPECT_EQ(rep["results"][2]["accuracy"], 0.5);
  EXPECT_EQ(rep["tasks"][0]["tool_calls"][0]["result"], "Paris");
}

TEST(EvalEndpoint, HttpErrorsAndBadJsonAreRecordedNotThrown) {
  MockServer mock;
  EndpointOptions o;
  o.url = mock.url();
  o.concurrency = 2;
  EndpointBackend backend(o);
  const auto tasks = read_fixture("errors.jsonl");
  EvalOptions eo;
  eo.modes = {Mode::ThinkMax};
  const auto records = run_eval(backend, tasks, eo, default_task_ops());
  ASSERT_EQ(records.size(), 2u);
  EXPECT_FALSE(records[0].correct);
  EXPECT_NE(records[0].error.find("HTTP 500"), std::string::npos) << records[0].error;
  EXPECT_NE(records[0].error.find("mock failure"), std::string::npos) << records[0].error;
  EXPECT_FALSE(records[1].correct);
  EXPECT_NE(records[1].error.find("invalid JSON"), std::string::npos) << records[1].error;
  for (const Json& b : mock.requests()) EXPECT_EQ(b["reasoning_effort"], "max");
  ReportInfo info;
  info.modes = eo.modes;
  EXPECT_EQ(report_json(info, records, false)["results"][0]["errors"], 2);
}

TEST(EvalEndpoint, ConnectionRefusedIsAClearError) {
  // A port that was free a moment ago and has no listener now: bound, not listened, closed.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  const int port = ntohs(a.sin_port);
  ::close(fd);
  EndpointOptions o;
  o.url = "http://127.0.0.1:" + std::to_string(port);
  EndpointBackend backend(o);
  try {
    backend.check_reachable();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot reach"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(o.url), std::string::npos) << e.what();
  }
  // A turn against it is an error reply, not an exception.
  TurnRequest q;
  q.messages = Json::array({Json{{"role", "user"}, {"content", "hi"}}});
  const auto r = backend.complete({q});
  EXPECT_FALSE(r[0].error.empty());
}

TEST(EvalEndpoint, BadUrlsAndReplyShapes) {
  EndpointOptions bad;
  bad.url = "127.0.0.1:80";
  EXPECT_THROW(EndpointBackend{bad}, Error);
  bad.url = "ftp://x";
  EXPECT_THROW(EndpointBackend{bad}, Error);
  TurnReply r;
  EndpointBackend::parse_response(R"({"choices": []})", r);
  EXPECT_NE(r.error.find("no choices"), std::string::npos);
  TurnReply r2;
  EndpointBackend::parse_response(R"({"choices": [{"message": {"content": 5}}]})", r2);
  EXPECT_NE(r2.error.find("content"), std::string::npos);
  TurnReply r3;
  EndpointBackend::parse_response(R"({"choices": [{"message": {"content": "a", "reasoning": "b"}}], "usage": {"completion_tokens": 4}})", r3);
  EXPECT_TRUE(r3.error.empty());
  EXPECT_EQ(r3.content, "a");
  EXPECT_EQ(r3.reasoning, "b");
  EXPECT_EQ(r3.completion_tokens, 4);
}

}  // namespace
}  // namespace dsv4::eval
