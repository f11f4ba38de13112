#include "train/eval/endpoint.h"

#include <httplib.h>

#include <chrono>
#include <exception>
#include <thread>

#include "base/error.h"
#include "train/eval/modes.h"

namespace dsv4::eval {
namespace {

std::string excerpt(const std::string& s, size_t max = 300) {
  if (s.size() <= max) return s;
  return s.substr(0, max) + "...";
}

void set_timeouts(httplib::Client& c, double seconds) {
  const auto t = std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
  c.set_connection_timeout(t);
  c.set_read_timeout(t);
  c.set_write_timeout(t);
}

std::string string_field(const Json& o, const char* key) {
  if (!o.is_object() || !o.contains(key) || o[key].is_null()) return "";
  if (!o[key].is_string()) throw Error(std::string("'") + key + "' is not a string");
  return o[key].get<std::string>();
}

}  // namespace

EndpointBackend::EndpointBackend(EndpointOptions o) : opts_(std::move(o)) {
  if (opts_.concurrency < 1) throw Error("--concurrency must be at least 1");
  const std::string& url = opts_.url;
  const size_t sep = url.find("://");
  if (sep == std::string::npos) throw Error("--endpoint " + url + ": expected http://host[:port] or https://host[:port]");
  const std::string scheme = url.substr(0, sep);
  if (scheme != "http" && scheme != "https") throw Error("--endpoint " + url + ": the scheme must be http or https");
#ifndef CPPHTTPLIB_OPENSSL_SUPPORT
  if (scheme == "https") throw Error("--endpoint " + url + ": this build's cpp-httplib has no TLS support; use http");
#endif
  const size_t slash = url.find('/', sep + 3);
  scheme_host_port_ = url.substr(0, slash);
  if (scheme_host_port_.size() <= sep + 3) throw Error("--endpoint " + url + ": no host");
  std::string prefix = slash == std::string::npos ? "" : url.substr(slash);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  if (prefix.size() >= 3 && prefix.compare(prefix.size() - 3, 3, "/v1") == 0) prefix.resize(prefix.size() - 3);
  path_ = prefix + "/v1/chat/completions";
  models_path_ = prefix + "/v1/models";
}

void EndpointBackend::check_reachable() const {
  httplib::Client c(scheme_host_port_);
  set_timeouts(c, std::min(opts_.timeout_s, 30.0));
  if (!opts_.api_key.empty()) c.set_bearer_token_auth(opts_.api_key);
  auto res = c.Get(models_path_);
  if (!res) {
    const std::string why = res.error() == httplib::Error::Connection ? "connection refused or host unreachable" : httplib::to_string(res.error());
    throw Error("--endpoint " + opts_.url + ": cannot reach the server (" + why + ")");
  }
  if (res->status == 401 || res->status == 403)
    throw Error("--endpoint " + opts_.url + ": the server refused the API key (HTTP " + std::to_string(res->status) + ")");
}

Json EndpointBackend::request_body(const TurnRequest& q) const {
  Json b = Json::object();
  if (!opts_.model.empty()) b["model"] = opts_.model;
  b["messages"] = q.messages;
  if (q.tools.is_array() && !q.tools.empty()) b["tools"] = q.tools;
  b["reasoning_effort"] = reasoning_effort_of(q.mode);
  if (opts_.max_tokens > 0) b["max_tokens"] = opts_.max_tokens;
  if (opts_.temperature >= 0) b["temperature"] = opts_.temperature;
  if (opts_.send_seed) b["seed"] = q.seed & 0x7fffffffffffffffULL;
  b["stream"] = false;
  return b;
}

void EndpointBackend::parse_response(const std::string& body, TurnReply& r) {
  Json j;
  try {
    j = Json::parse(body);
  } catch (const std::exception& e) {
    r.error = "invalid JSON reply: " + excerpt(body, 120);
    return;
  }
  try {
    if (!j.is_object() || !j.contains("choices") || !j["choices"].is_array() || j["choices"].empty())
      throw Error("no choices in the reply");
    const Json& choice = j["choices"][0];
    if (!choice.is_object() || !choice.contains("message") || !choice["message"].is_object())
      throw Error("choices[0] has no message");
    const Json& m = choice["message"];
    r.content = string_field(m, "content");
    r.reasoning = string_field(m, "reasoning_content");
    if (r.reasoning.empty()) r.reasoning = string_field(m, "reasoning");  // vLLM / OpenRouter spelling
    if (m.contains("tool_calls") && !m["tool_calls"].is_null()) {
      if (!m["tool_calls"].is_array()) throw Error("'tool_calls' is not an array");
      r.tool_calls = m["tool_calls"];
    }
    if (j.contains("usage") && j["usage"].is_object()) {
      const Json& u = j["usage"];
      if (u.contains("completion_tokens") && u["completion_tokens"].is_number_integer())
        r.completion_tokens = u["completion_tokens"].get<int64_t>();
      if (u.contains("completion_tokens_details") && u["completion_tokens_details"].is_object()) {
        const Json& d = u["completion_tokens_details"];
        if (d.contains("reasoning_tokens") && d["reasoning_tokens"].is_number_integer())
          r.reasoning_tokens = d["reasoning_tokens"].get<int64_t>();
      }
    }
  } catch (const std::exception& e) {
    r.error = std::string("unexpected reply: ") + e.what() + ": " + excerpt(body, 120);
  }
}

TurnReply EndpointBackend::complete_one(const TurnRequest& q) const {
  TurnReply r;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    httplib::Client c(scheme_host_port_);
    set_timeouts(c, opts_.timeout_s);
    if (!opts_.api_key.empty()) c.set_bearer_token_auth(opts_.api_key);
    auto res = c.Post(path_, request_body(q).dump(), "application/json");
    if (!res) {
      r.error = "request failed: " + httplib::to_string(res.error());
    } else if (res->status != 200) {
      r.error = "HTTP " + std::to_string(res->status) + ": " + excerpt(res->body);
    } else {
      parse_response(res->body, r);
    }
  } catch (const std::exception& e) {
    r.error = std::string("request failed: ") + e.what();
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

std::vector<TurnReply> EndpointBackend::complete(const std::vector<TurnRequest>& requests) {
  std::vector<TurnReply> out(requests.size());
  if (requests.size() == 1) {
    out[0] = complete_one(requests[0]);
    return out;
  }
  std::vector<std::thread> threads;
  threads.reserve(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) threads.emplace_back([&, i] { out[i] = complete_one(requests[i]); });
  for (std::thread& t : threads) t.join();
  return out;
}

}  // namespace dsv4::eval
