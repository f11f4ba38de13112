// A ChatBackend for any OpenAI-compatible server: POST {URL}/v1/chat/completions (non-
// streaming) with cpp-httplib, one thread per request of a complete() call (up to
// `concurrency`). Reasoning modes go as `reasoning_effort` ("none" / "high" / "max"), as
// `dsv4 serve` reads it; assistant turns are sent back with their reasoning_content.
#pragma once
#include <string>

#include "train/eval/runner.h"

namespace dsv4::eval {

struct EndpointOptions {
  std::string url;          // http(s)://host[:port][/prefix]; "/v1" at the end is optional
  std::string api_key;      // "" = no Authorization header
  std::string model;        // "" = no "model" field
  int concurrency = 1;
  int64_t max_tokens = 0;   // 0 = not sent (the server's default)
  double temperature = -1;  // < 0 = not sent
  bool send_seed = true;
  double timeout_s = 600;   // connect/read/write timeout of one request
};

class EndpointBackend : public ChatBackend {
 public:
  explicit EndpointBackend(EndpointOptions o);  // throws Error for a malformed URL
  // Fails clearly (Error naming the URL and the reason) when the server cannot be reached,
  // e.g. connection refused. An HTTP error status from GET /v1/models is fine (not every
  // server has it).
  void check_reachable() const;
  std::vector<TurnReply> complete(const std::vector<TurnRequest>& requests) override;
  int max_parallel() const override { return opts_.concurrency; }

  // The JSON body sent for a request (tests look at it).
  Json request_body(const TurnRequest& q) const;
  // Reads a chat completion response body (status 200) into a reply; sets error when it is
  // not one.
  static void parse_response(const std::string& body, TurnReply& r);

 private:
  TurnReply complete_one(const TurnRequest& q) const;

  EndpointOptions opts_;
  std::string scheme_host_port_;  // "http://127.0.0.1:8080"
  std::string path_;              // "/v1/chat/completions" under the URL's prefix
  std::string models_path_;       // "/v1/models"
};

}  // namespace dsv4::eval
