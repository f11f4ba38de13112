#include "frontends/server/openai_response.h"

#include <random>

namespace dsv4::server {

std::string random_hex(size_t n) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* kHex = "0123456789abcdef";
  std::string s(n, '0');
  for (auto& c : s) c = kHex[rng() & 15];
  return s;
}

std::string new_request_id() {
  std::string h = random_hex(32);
  h[12] = '4';                          // version 4 (random)
  h[16] = "89ab"[h[16] % 4];            // RFC 4122 variant
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" + h.substr(20);
}

Json usage_json(const JobResult& r) {
  Json u = Json::object();
  u["prompt_tokens"] = r.prompt_tokens;
  u["completion_tokens"] = r.generated_tokens;
  u["total_tokens"] = r.prompt_tokens + r.generated_tokens;
  u["prompt_tokens_details"] = Json::object({{"cached_tokens", r.cached_tokens}});
  u["prompt_cache_hit_tokens"] = r.cached_tokens;
  u["prompt_cache_miss_tokens"] = r.prompt_tokens - r.cached_tokens;
  u["completion_tokens_details"] = Json::object({{"reasoning_tokens", r.reasoning_tokens}});
  u["speculative"] = speculative_usage_json(r);
  return u;
}

Json speculative_usage_json(const JobResult& r) {
  return Json::object({{"drafted_tokens", r.drafted_tokens}, {"accepted_tokens", r.accepted_tokens}});
}

std::string finish_reason(const JobResult& r) {
  // A call cut off by max_tokens is "length": its arguments are incomplete, so an agent must
  // not run it as if the model had finished it.
  if (!r.message.tool_calls.empty() && !(r.finish == FinishReason::kLength && r.message.truncated_tool_call)) return "tool_calls";
  return r.finish == FinishReason::kLength ? "length" : "stop";
}

namespace {
Json bytes_array(const std::string& s) {
  Json a = Json::array();
  for (unsigned char c : s) a.push_back(static_cast<int>(c));
  return a;
}
Json token_entry(const Tokenizer& tok, int32_t id, float lp) {
  std::string b;
  try {
    b = tok.token_bytes(id);
  } catch (const Error&) {
  }
  // `token` must be valid UTF-8 for JSON: decode() replaces partial characters; `bytes` is exact.
  std::string text;
  try {
    text = tok.decode({id});
  } catch (const Error&) {
  }
  return Json::object({{"token", text}, {"logprob", lp}, {"bytes", bytes_array(b)}});
}
}  // namespace

Json logprobs_json(const Tokenizer& tok, const std::vector<int32_t>& tokens, const std::vector<SampleResult>& samples,
                   int top_n) {
  Json content = Json::array();
  for (size_t i = 0; i < samples.size() && i < tokens.size(); ++i) {
    const SampleResult& s = samples[i];
    Json e = token_entry(tok, tokens[i], s.logprob);
    Json top = Json::array();
    for (int k = 0; k < s.n_top && k < top_n; ++k) top.push_back(token_entry(tok, s.top[static_cast<size_t>(k)].token, s.top[static_cast<size_t>(k)].logprob));
    e["top_logprobs"] = std::move(top);
    content.push_back(std::move(e));
  }
  return Json::object({{"content", std::move(content)}});
}

Json chat_message_json(const JobResult& r, chat::ThinkingMode mode, std::vector<std::string>& ids) {
  Json m = Json::object();
  m["role"] = "assistant";
  const bool calls = !r.message.tool_calls.empty();
  m["content"] = (calls && r.message.content.empty()) ? Json(nullptr) : Json(r.message.content);
  if (mode == chat::ThinkingMode::Thinking) m["reasoning_content"] = r.message.reasoning_content;
  if (calls) {
    Json tc = Json::array();
    ids.clear();
    for (const auto& c : r.message.tool_calls) {
      ids.push_back("call_" + random_hex(24));
      tc.push_back(Json::object({{"id", ids.back()}, {"type", "function"},
                                 {"function", Json::object({{"name", c.name}, {"arguments", c.arguments}})}}));
    }
    m["tool_calls"] = std::move(tc);
  }
  return m;
}

Json chat_completion_json(const std::string& id, const std::string& model, int64_t created, const ChatRequest& req,
                          const JobResult& r, const Tokenizer& tok, std::vector<std::string>& ids) {
  Json choice = Json::object();
  choice["index"] = 0;
  choice["message"] = chat_message_json(r, req.encode.thinking_mode, ids);
  choice["logprobs"] = req.logprobs ? logprobs_json(tok, r.tokens, r.samples, req.top_logprobs) : Json(nullptr);
  choice["finish_reason"] = finish_reason(r);
  Json out = Json::object();
  out["id"] = id;
  out["object"] = "chat.completion";
  out["created"] = created;
  out["model"] = model;
  out["choices"] = Json::array({std::move(choice)});
  out["usage"] = usage_json(r);
  out["system_fingerprint"] = "dsv4";
  return out;
}

Json completion_choice_json(const Tokenizer& tok, const std::string& text, const std::vector<int32_t>* tokens,
                            const std::vector<SampleResult>* samples, int top_n, Json finish) {
  Json c = Json::object({{"text", text}, {"index", 0}});
  if (tokens && samples && !samples->empty()) {
    Json toks = Json::array(), lps = Json::array(), tops = Json::array();
    for (size_t i = 0; i < samples->size() && i < tokens->size(); ++i) {
      const SampleResult& s = (*samples)[i];
      toks.push_back(tok.decode({(*tokens)[i]}));
      lps.push_back(s.logprob);
      Json t = Json::object();
      for (int k = 0; k < s.n_top && k < top_n; ++k) t[tok.decode({s.top[static_cast<size_t>(k)].token})] = s.top[static_cast<size_t>(k)].logprob;
      tops.push_back(std::move(t));
    }
    c["logprobs"] = Json::object({{"tokens", std::move(toks)}, {"token_logprobs", std::move(lps)}, {"top_logprobs", std::move(tops)}});
  } else {
    c["logprobs"] = nullptr;
  }
  c["finish_reason"] = std::move(finish);
  return c;
}

Json text_completion_json(const std::string& id, int64_t created, const std::string& model, Json choices) {
  return Json::object({{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model}, {"choices", std::move(choices)}});
}

ChatChunker::ChatChunker(std::string id, std::string model, int64_t created, const ChatRequest& req, const Tokenizer& tok)
    : id_(std::move(id)), model_(std::move(model)), created_(created), req_(req), tok_(tok) {}

Json ChatChunker::chunk(Json delta, Json finish) {
  Json choice = Json::object();
  choice["index"] = 0;
  choice["delta"] = std::move(delta);
  if (req_.logprobs && !pending_.empty()) {
    choice["logprobs"] = logprobs_json(tok_, pending_.tokens, pending_.samples, req_.top_logprobs);
    pending_.clear();
  } else {
    choice["logprobs"] = nullptr;
  }
  choice["finish_reason"] = std::move(finish);
  Json c = Json::object();
  c["id"] = id_;
  c["object"] = "chat.completion.chunk";
  c["created"] = created_;
  c["model"] = model_;
  c["system_fingerprint"] = "dsv4";
  c["choices"] = Json::array({std::move(choice)});
  return c;
}

std::vector<Json> ChatChunker::first() {
  Json d = Json::object({{"role", "assistant"}, {"content", ""}});
  if (req_.encode.thinking_mode == chat::ThinkingMode::Thinking) d["reasoning_content"] = "";
  return {chunk(std::move(d))};
}

std::vector<Json> ChatChunker::on_events(const std::vector<JobEvent>& events) {
  std::vector<Json> out;
  for (const JobEvent& e : events) {
    if (e.kind == JobEvent::Kind::Token) {
      pending_.add(e);
      continue;
    }
    const chat::StreamDelta& d = e.delta;
    using K = chat::StreamDelta::Kind;
    switch (d.kind) {
      case K::Reasoning:
        if (!d.text.empty()) out.push_back(chunk(Json::object({{"content", nullptr}, {"reasoning_content", d.text}})));
        break;
      case K::Content:
        if (!d.text.empty()) out.push_back(chunk(Json::object({{"content", d.text}, {"reasoning_content", nullptr}})));
        break;
      case K::ToolCallStart: {
        tool_ids_.push_back("call_" + random_hex(24));
        Json call = Json::object({{"index", d.tool_index}, {"id", tool_ids_.back()}, {"type", "function"},
                                  {"function", Json::object({{"name", d.text}, {"arguments", ""}})}});
        out.push_back(chunk(Json::object({{"tool_calls", Json::array({std::move(call)})}})));
        break;
      }
      case K::ToolCallArguments: {
        if (d.text.empty()) break;
        Json call = Json::object({{"index", d.tool_index}, {"function", Json::object({{"arguments", d.text}})}});
        out.push_back(chunk(Json::object({{"tool_calls", Json::array({std::move(call)})}})));
        break;
      }
      case K::Done:
        break;
    }
  }
  return out;
}

std::vector<Json> ChatChunker::last(const JobResult& r) {
  std::vector<Json> out;
  out.push_back(chunk(Json::object(), finish_reason(r)));
  if (req_.include_usage) {
    Json u = Json::object();
    u["id"] = id_;
    u["object"] = "chat.completion.chunk";
    u["created"] = created_;
    u["model"] = model_;
    u["system_fingerprint"] = "dsv4";
    u["choices"] = Json::array();
    u["usage"] = usage_json(r);
    out.push_back(std::move(u));
  }
  return out;
}

}  // namespace dsv4::server
