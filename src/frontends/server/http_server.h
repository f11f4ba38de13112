// `dsv4 serve`: the HTTP routes (cpp-httplib) over the scheduler.
//
//   POST /v1/chat/completions  OpenAI / DeepSeek chat (JSON or SSE)
//   POST /v1/completions       raw prompt completion (JSON or SSE)
//   POST /v1/messages          Anthropic Messages (JSON or SSE events); .../count_tokens
//   POST /v1/responses         OpenAI Responses (JSON or SSE events); GET / DELETE
//                              /v1/responses/{id}, POST /v1/responses/{id}/cancel
//   GET  /                     the chat web page (web_page.h; no key needed to load it)
//   GET  /v1/models, GET /health, GET /metrics (Prometheus), POST /tokenize, POST /detokenize
// (each also without the /v1 prefix, as DeepSeek's base URL accepts both).
//
// Every error is a JSON body ({"error": {...}}, or Anthropic's shape on /v1/messages) with an
// HTTP status: 400 bad input, 401 missing / wrong API key, 404 unknown route or model, 413 body
// too large, 503 queue full or shutting down, 500 internal. While a request waits for a slot or
// generates, the connection gets SSE comments / pings (streaming) or blank lines (JSON, which
// JSON parsers skip); a failed write means the client left, and its job is cancelled, which
// frees the slot before the next decode step.
#pragma once
#include <memory>
#include <string>

#include "frontends/server/chat_request.h"
#include "frontends/server/metrics.h"
#include "frontends/server/scheduler.h"

namespace httplib {
class Server;
}

namespace dsv4::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (printed)
  std::string api_key;
  size_t max_body_bytes = 16u << 20;
  int http_threads = 64;
  bool log_requests = true;
  size_t responses_max_entries = 1024;  // stored Responses API responses (oldest dropped first)
  int64_t responses_ttl_seconds = 3600;
  SchedulerOptions scheduler;
  ServerInfo info;
};

class HttpServer {
 public:
  HttpServer(std::shared_ptr<const ModelWeights> model, std::shared_ptr<const Tokenizer> tokenizer, ServerOptions options);
  ~HttpServer();
  // Binds; returns the port (throws Error if it cannot bind).
  int bind();
  // Serves until stop(). Blocks.
  void serve();
  // Graceful stop: no new work, in-flight requests are cancelled (their streams end with a
  // finish chunk), then the listener closes.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dsv4::server
