#include "frontends/server/http_server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <thread>

#include "frontends/server/anthropic.h"
#include "frontends/server/openai_response.h"
#include "frontends/server/responses.h"
#include "frontends/server/responses_request.h"
#include "frontends/server/responses_store.h"
#include "frontends/server/web_page.h"

namespace dsv4::server {

namespace {
using Clock = std::chrono::steady_clock;

std::string dump(const Json& j) { return j.dump(-1, ' ', false, nlohmann::detail::error_handler_t::replace); }

Json openai_error_json(const ApiError& e) {
  Json err = Json::object({{"message", e.what()}, {"type", e.type()}, {"param", e.param().empty() ? Json(nullptr) : Json(e.param())},
                           {"code", e.code()}});
  return Json::object({{"error", std::move(err)}});
}

int64_t unix_now() { return static_cast<int64_t>(std::time(nullptr)); }

// Streams are written from one provider call that loops until the job ends.
struct StreamCtx {
  std::shared_ptr<Job> job;
  std::function<std::string()> start;
  std::function<std::string(const std::vector<JobEvent>&)> events;
  std::function<std::string(const JobResult&)> finish;
  std::function<std::string(const std::string&)> error;
  // What a client may rely on once it holds the response (tool-call memory, the responses
  // store): runs after `finish` built the last bytes and before they are written, only for a
  // job that finished without error. Running it later (in on_end) raced with a client's next
  // request, which can arrive before httplib calls the releaser.
  std::function<void(const std::shared_ptr<Job>&)> on_complete;
  std::function<void(const std::shared_ptr<Job>&)> on_end;  // logging; after the response is over
  std::string keepalive;
};
}  // namespace

struct HttpServer::Impl {
  std::shared_ptr<const ModelWeights> model;
  std::shared_ptr<const Tokenizer> tok;
  ServerOptions opt;
  Metrics metrics;
  Scheduler scheduler;
  ToolCallMemory memory;
  ResponsesStore responses;
  httplib::Server svr;
  std::mutex log_mu;
  int port = 0;
  std::atomic<bool> stopped{false};

  Impl(std::shared_ptr<const ModelWeights> m, std::shared_ptr<const Tokenizer> t, ServerOptions o)
      : model(std::move(m)),
        tok(std::move(t)),
        opt(std::move(o)),
        scheduler(model, tok, opt.scheduler, metrics),
        responses(opt.responses_max_entries, std::chrono::seconds(opt.responses_ttl_seconds)) {
    opt.info.context = scheduler.context();
    routes();
  }

  void log_line(const std::string& s) {
    if (!opt.log_requests) return;
    std::lock_guard lock(log_mu);
    fprintf(stderr, "%s\n", s.c_str());
    fflush(stderr);
  }

  void log_request(const std::string& id, const std::string& path, const Job& job) {
    const JobResult& r = job.result;
    const double computed = static_cast<double>(r.prompt_tokens - r.cached_tokens);
    char buf[512];
    snprintf(buf, sizeof buf,
             "request %s %s prompt=%lld cached=%lld generated=%lld prefill=%.1f tok/s decode=%.1f tok/s finish=%s%s%s",
             id.c_str(), path.c_str(), static_cast<long long>(r.prompt_tokens), static_cast<long long>(r.cached_tokens),
             static_cast<long long>(r.generated_tokens), r.prefill_seconds > 0 ? computed / r.prefill_seconds : 0.0,
             r.decode_seconds > 0 ? static_cast<double>(r.generated_tokens) / r.decode_seconds : 0.0,
             job.error.empty() ? finish_reason_name(r.finish) : "error", job.error.empty() ? "" : " error=", job.error.c_str());
    log_line(buf);
  }

  void send_error(httplib::Response& res, const ApiError& e, bool anthropic) {
    ++metrics.requests_failed;
    res.status = e.status();
    res.set_content(dump(anthropic ? anthropic_error_json(e) : openai_error_json(e)) + "\n", "application/json");
  }

  Json parse_body(const httplib::Request& req) {
    if (req.body.size() > opt.max_body_bytes) throw ApiError(413, "the request body is too large", "invalid_request_error");
    try {
      return json_py::loads(req.body);
    } catch (const Error& e) {
      throw bad_request(std::string("the request body is not valid JSON: ") + e.what());
    }
  }

  bool authorized(const httplib::Request& req) {
    if (opt.api_key.empty()) return true;
    const std::string auth = req.get_header_value("Authorization");
    if (auth == "Bearer " + opt.api_key) return true;
    return req.get_header_value("x-api-key") == opt.api_key;
  }

  // The provider loop shared by every streaming and non-streaming generation response.
  void stream(httplib::Response& res, const char* content_type, std::shared_ptr<StreamCtx> ctx) {
    res.set_chunked_content_provider(
        content_type,
        [ctx](size_t, httplib::DataSink& sink) -> bool {
          // Nothing may escape into httplib's writer: a failure here ends this response only.
          try {
            return pump(*ctx, sink);
          } catch (const std::exception& e) {
            ctx->job->cancelled = true;
            fprintf(stderr, "request %s: response writer failed: %s\n", ctx->job->id.c_str(), e.what());
            return false;
          }
        },
        [this, ctx](bool) {
          // Runs when the response is over, written or not: a client that left cancels the job.
          ctx->job->cancelled = true;
          std::vector<JobEvent> ignore;
          while (!ctx->job->wait_events(ignore, 1000)) ignore.clear();
          try {
            if (ctx->on_end) ctx->on_end(ctx->job);
          } catch (const std::exception& e) {
            log_line(std::string("request ") + ctx->job->id + ": " + e.what());
          }
        });
  }

  static bool pump(StreamCtx& c, httplib::DataSink& sink) {
          StreamCtx* ctx = &c;
          auto write = [&](const std::string& s) { return s.empty() || sink.write(s.data(), s.size()); };
          auto cancel = [&] {
            ctx->job->cancelled = true;
            return false;
          };
          if (!write(ctx->start())) return cancel();
          auto last_write = Clock::now();
          for (;;) {
            std::vector<JobEvent> ev;
            const bool fin = ctx->job->wait_events(ev, 250);
            std::string out = ev.empty() ? std::string() : ctx->events(ev);
            if (out.empty() && !fin && Clock::now() - last_write > std::chrono::milliseconds(500)) out = ctx->keepalive;
            if (!out.empty()) {
              if (!write(out)) return cancel();
              last_write = Clock::now();
            }
            if (fin) {
              std::string tail;
              {
                std::lock_guard lk(ctx->job->mu);
                tail = ctx->job->error.empty() ? std::string() : ctx->error(ctx->job->error);
              }
              if (tail.empty()) {
                tail = ctx->finish(ctx->job->result);
                if (ctx->on_complete) ctx->on_complete(ctx->job);
              }
              write(tail);
              sink.done();
              return true;
            }
          }
  }

  // The one way every generation handler starts its job: `before` runs ahead of the queue (e.g.
  // to make the job cancellable by id); a refused submit (503) undoes nothing else.
  std::shared_ptr<Job> submit_job(const std::string& id, JobSpec spec,
                                  const std::function<void(const std::shared_ptr<Job>&)>& before = {}) {
    auto job = std::make_shared<Job>(std::move(spec));
    job->id = id;
    if (before) before(job);
    try {
      scheduler.submit(job);
    } catch (...) {
      responses.untrack(id);
      throw;
    }
    return job;
  }

  // Stores the model's own text for the tool calls of a finished turn (see ToolCallMemory).
  void remember_tool_turn(const ChatRequest& cr, const JobResult& r, const std::vector<std::string>& ids) {
    if (ids.empty() || r.finish == FinishReason::kStop || r.finish == FinishReason::kCancelled) return;
    if (ids.size() != r.message.tool_calls.size()) return;
    Json asst = Json::object({{"role", "assistant"}, {"content", r.message.content}});
    if (cr.encode.thinking_mode == chat::ThinkingMode::Thinking) asst["reasoning_content"] = r.message.reasoning_content;
    Json calls = Json::array();
    for (size_t i = 0; i < ids.size(); ++i)
      calls.push_back(Json::object({{"id", ids[i]}, {"type", "function"},
                                    {"function", Json::object({{"name", r.message.tool_calls[i].name}, {"arguments", r.message.tool_calls[i].arguments}})}}));
    asst["tool_calls"] = std::move(calls);
    try {
      Json msgs = cr.messages;
      msgs.push_back(asst);
      const std::string base = chat::encode_messages(cr.messages, cr.encode);
      const std::string full = chat::encode_messages(msgs, cr.encode);
      if (full.compare(0, base.size(), base) != 0) return;
      ToolCallMemory::Turn t;
      t.canonical = full.substr(base.size());
      t.raw = r.text;
      t.tokens.assign(r.tokens.begin(), r.tokens.end());
      const int32_t eos = static_cast<int32_t>(model->config.eos_token_id);
      if (r.tokens.empty() || r.tokens.back() != eos) {
        t.raw += chat::kEos;
        t.tokens.push_back(eos);
      }
      memory.remember(ids[0], std::move(t));
    } catch (const std::exception&) {
      // not remembered: the next request renders the canonical text (a shorter cache hit)
    }
  }

  void handle_chat(const httplib::Request& req, httplib::Response& res, bool anthropic) {
    ++metrics.requests_total;
    const std::string id = anthropic ? "msg_" + random_hex(24) : new_request_id();
    try {
      Json body = parse_body(req);
      if (anthropic) body = anthropic_to_openai(body);
      auto cr = std::make_shared<ChatRequest>(parse_chat_request(body, opt.info));
      Prompt prompt = build_chat_prompt(*cr, *tok, &memory);
      JobSpec spec = make_job_spec(*cr, prompt, opt.info);
      auto job = submit_job(id, std::move(spec));
      const int64_t created = unix_now();
      auto ctx = std::make_shared<StreamCtx>();
      ctx->job = job;
      const std::string path = req.path;
      auto ids = std::make_shared<std::vector<std::string>>();
      if (!anthropic && cr->stream) {
        auto chunker = std::make_shared<ChatChunker>(id, cr->model, created, *cr, *tok);
        auto sse = [](const std::vector<Json>& cs) {
          std::string s;
          for (const Json& c : cs) s += "data: " + dump(c) + "\n\n";
          return s;
        };
        ctx->start = [chunker, sse, cr] { return sse(chunker->first()); };
        ctx->events = [chunker, sse](const std::vector<JobEvent>& ev) { return sse(chunker->on_events(ev)); };
        ctx->finish = [chunker, sse, ids](const JobResult& r) {
          *ids = chunker->tool_ids();
          return sse(chunker->last(r)) + "data: [DONE]\n\n";
        };
        ctx->error = [](const std::string& m) {
          return "data: " + dump(openai_error_json(ApiError(500, m, "server_error"))) + "\n\ndata: [DONE]\n\n";
        };
        ctx->keepalive = ": keep-alive\n\n";
      } else if (anthropic && cr->stream) {
        auto st = std::make_shared<AnthropicStreamer>(id, cr->model, static_cast<int64_t>(job->spec.prompt.size()), cr->stop);
        auto sse = [](const std::vector<std::pair<std::string, Json>>& evs) {
          std::string s;
          for (const auto& [name, data] : evs) s += "event: " + name + "\ndata: " + dump(data) + "\n\n";
          return s;
        };
        ctx->start = [st, sse] { return sse(st->start()); };
        ctx->events = [st, sse](const std::vector<JobEvent>& ev) { return sse(st->on_events(ev)); };
        ctx->finish = [st, sse, ids](const JobResult& r) {
          *ids = st->tool_ids();
          return sse(st->finish(r));
        };
        ctx->error = [](const std::string& m) {
          return "event: error\ndata: " + dump(anthropic_error_json(ApiError(500, m, "api_error"))) + "\n\n";
        };
        ctx->keepalive = "event: ping\ndata: {\"type\": \"ping\"}\n\n";
      } else {
        ctx->start = [] { return std::string(); };
        ctx->events = [](const std::vector<JobEvent>&) { return std::string(); };
        ctx->finish = [this, id, cr, created, ids, anthropic](const JobResult& r) {
          Json out = anthropic ? anthropic_message_json(id, cr->model, r, cr->encode.thinking_mode, *ids, cr->stop)
                               : chat_completion_json(id, cr->model, created, *cr, r, *tok, *ids);
          return dump(out) + "\n";
        };
        ctx->error = [anthropic](const std::string& m) {
          ApiError e(500, m, "server_error");
          return dump(anthropic ? anthropic_error_json(e) : openai_error_json(e)) + "\n";
        };
        ctx->keepalive = "\n";
      }
      ctx->on_complete = [this, cr, ids](const std::shared_ptr<Job>& j) { remember_tool_turn(*cr, j->result, *ids); };
      ctx->on_end = [this, id, path](const std::shared_ptr<Job>& j) { log_request(id, path, *j); };
      stream(res, (cr->stream ? "text/event-stream" : "application/json"), ctx);
    } catch (const ApiError& e) {
      send_error(res, e, anthropic);
      log_line("request " + id + " " + req.path + " status=" + std::to_string(e.status()) + " error=" + e.what());
    } catch (const std::exception& e) {
      send_error(res, ApiError(500, std::string("internal error: ") + e.what(), "server_error"), anthropic);
      log_line("request " + id + " " + req.path + " status=500 error=" + e.what());
    }
  }

  // POST /v1/responses: the request becomes a chat request (responses_request.h); the output is
  // a response object or its event stream (responses.h). Finished responses go to the store.
  void handle_responses(const httplib::Request& req, httplib::Response& res) {
    ++metrics.requests_total;
    const std::string id = "resp_" + random_hex(48);
    try {
      Json body = parse_body(req);
      ResponsesRequest rr = parse_responses_request(body, responses);
      auto cr = std::make_shared<ChatRequest>(parse_chat_request(rr.chat_body, opt.info));
      Prompt prompt = build_chat_prompt(*cr, *tok, &memory);
      JobSpec spec = make_job_spec(*cr, prompt, opt.info);
      ResponseShell shell;
      shell.id = id;
      shell.created = unix_now();
      shell.model = cr->model;
      shell.echo = rr.echo;
      shell.include_encrypted_reasoning = rr.include_encrypted_reasoning;
      auto job = submit_job(id, std::move(spec), [&](const std::shared_ptr<Job>& j) {
        responses.track(id, j, response_object(shell, "in_progress", Json::array(), nullptr));
      });
      auto ctx = std::make_shared<StreamCtx>();
      ctx->job = job;
      auto final_response = std::make_shared<Json>();
      auto ids = std::make_shared<std::vector<std::string>>();
      const chat::ThinkingMode mode = cr->encode.thinking_mode;
      if (rr.stream) {
        auto st = std::make_shared<ResponsesStreamer>(shell);
        ctx->start = [st] { return responses_sse(st->start()); };
        ctx->events = [st](const std::vector<JobEvent>& ev) { return responses_sse(st->on_events(ev)); };
        ctx->finish = [st, final_response, ids](const JobResult& r) {
          std::string s = responses_sse(st->finish(r));
          *final_response = st->final_response();
          *ids = st->call_ids();
          return s;
        };
        ctx->error = [st](const std::string& m) { return responses_sse(st->failed(m)); };
        ctx->keepalive = ": keep-alive\n\n";
      } else {
        ctx->start = [] { return std::string(); };
        ctx->events = [](const std::vector<JobEvent>&) { return std::string(); };
        ctx->finish = [shell, mode, final_response, ids](const JobResult& r) {
          *final_response = response_object(shell, response_status(r), response_output(shell, r, mode, *ids), &r);
          return dump(*final_response) + "\n";
        };
        ctx->error = [](const std::string& m) { return dump(openai_error_json(ApiError(500, m, "server_error"))) + "\n"; };
        ctx->keepalive = "\n";
      }
      const std::string path = req.path;
      const bool store = rr.store;
      Json conversation = std::move(rr.conversation);
      ctx->on_end = [this, id, path](const std::shared_ptr<Job>& j) {
        responses.untrack(id);  // again for a job that failed or lost its client
        log_request(id, path, *j);
      };
      ctx->on_complete = [this, id, cr, ids, final_response, store, conversation](const std::shared_ptr<Job>& j) {
        responses.untrack(id);  // finished: a cancel from now on gets "already finished"
        if (final_response->is_null()) return;
        remember_tool_turn(*cr, j->result, *ids);
        if (!store) return;
        StoredResponse sr;
        sr.response = *final_response;
        sr.messages = conversation;
        sr.messages.push_back(output_to_chat_message((*final_response)["output"]));
        responses.put(id, std::move(sr));
      };
      stream(res, rr.stream ? "text/event-stream" : "application/json", ctx);
    } catch (const ApiError& e) {
      send_error(res, e, false);
      log_line("request " + id + " " + req.path + " status=" + std::to_string(e.status()) + " error=" + e.what());
    } catch (const std::exception& e) {
      send_error(res, ApiError(500, std::string("internal error: ") + e.what(), "server_error"), false);
      log_line("request " + id + " " + req.path + " status=500 error=" + e.what());
    }
  }

  // POST /v1/messages/count_tokens: the prompt the request would be rendered to, counted.
  void handle_count_tokens(const httplib::Request& req, httplib::Response& res) {
    try {
      Json body = parse_body(req);
      if (body.is_object() && !body.contains("max_tokens")) body["max_tokens"] = 1;
      Json chat_body = anthropic_to_openai(body);
      chat_body.erase("stream");
      ChatRequest cr = parse_chat_request(chat_body, opt.info);
      Prompt prompt = build_chat_prompt(cr, *tok, &memory);
      res.set_content(dump(Json::object({{"input_tokens", static_cast<int64_t>(prompt.tokens.size())}})) + "\n", "application/json");
    } catch (const ApiError& e) {
      send_error(res, e, true);
    } catch (const std::exception& e) {
      send_error(res, ApiError(500, std::string("internal error: ") + e.what(), "server_error"), true);
    }
  }

  ApiError response_not_found(const std::string& id) {
    return ApiError(404, "Response with id '" + id + "' not found.", "invalid_request_error", "response_id", "not_found");
  }

  void handle_completion(const httplib::Request& req, httplib::Response& res) {
    ++metrics.requests_total;
    const std::string id = "cmpl-" + random_hex(24);
    try {
      Json body = parse_body(req);
      if (!body.is_object()) throw bad_request("the request body must be a JSON object");
      std::string model;
      check_model_name(body, opt.info, model);
      JobSpec spec;
      int64_t max_tokens = -1;
      parse_sampling_fields(body, spec.sampling, spec.stop, max_tokens);
      auto it = body.find("prompt");
      if (it == body.end()) throw bad_request("'prompt' is required", "prompt");
      const Json& p = *it;
      if (p.is_string()) {
        std::vector<int32_t> ids = tok->encode(p.get<std::string>());
        spec.prompt.assign(ids.begin(), ids.end());
      } else if (p.is_array() && !p.empty() && p[0].is_number_integer()) {
        for (const Json& x : p) {
          if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= tok->vocab_size())
            throw bad_request("'prompt' token ids must be integers in the vocabulary", "prompt");
          spec.prompt.push_back(x.get<int64_t>());
        }
      } else if (p.is_array() && p.size() == 1 && p[0].is_string()) {
        std::vector<int32_t> ids = tok->encode(p[0].get<std::string>());
        spec.prompt.assign(ids.begin(), ids.end());
      } else {
        throw bad_request("'prompt' must be a string, one string in an array, or an array of token ids", "prompt");
      }
      if (spec.prompt.empty()) throw bad_request("'prompt' is empty", "prompt");
      const int64_t n = static_cast<int64_t>(spec.prompt.size());
      if (n >= opt.info.context)
        throw ApiError(400, "the prompt (" + std::to_string(n) + " tokens) does not fit the context of " + std::to_string(opt.info.context) + " tokens",
                       "invalid_request_error", "prompt", "context_length_exceeded");
      spec.max_tokens = clamp_max_tokens(max_tokens > 0 ? max_tokens : std::min<int64_t>(16, opt.info.context - n), n, opt.info);  // 16: OpenAI's default
      spec.parse_chat = false;
      int top = 0;
      if (auto lp = body.find("logprobs"); lp != body.end() && !lp->is_null()) {
        if (!lp->is_number_integer() || lp->get<int64_t>() < 0 || lp->get<int64_t>() > 5)
          throw bad_request("'logprobs' must be an integer between 0 and 5", "logprobs");
        top = static_cast<int>(lp->get<int64_t>());
        spec.want_logprobs = true;
        spec.sampling.logprobs = true;
        spec.sampling.top_logprobs = top;
      }
      bool stream_mode = false;
      if (auto s = body.find("stream"); s != body.end() && !s->is_null()) {
        if (!s->is_boolean()) throw bad_request("'stream' must be a boolean", "stream");
        stream_mode = s->get<bool>();
      }
      auto job = submit_job(id, std::move(spec));
      const int64_t created = unix_now();
      auto ctx = std::make_shared<StreamCtx>();
      ctx->job = job;
      auto tk = tok;
      auto choice = [tk, top](const std::string& text, const std::vector<int32_t>* toks, const std::vector<SampleResult>* samples, Json finish) {
        return completion_choice_json(*tk, text, toks, samples, top, std::move(finish));
      };
      auto wrap = [id, created, model](Json choices) { return text_completion_json(id, created, model, std::move(choices)); };
      ctx->start = [] { return std::string(); };
      if (stream_mode) {
        // With logprobs, each chunk carries the tokens sampled since the previous chunk.
        auto pending = std::make_shared<PendingTokens>();
        auto with_pending = [choice, pending](const std::string& text, Json finish) {
          Json c = choice(text, &pending->tokens, &pending->samples, std::move(finish));
          pending->clear();
          return c;
        };
        ctx->events = [with_pending, wrap, pending](const std::vector<JobEvent>& ev) {
          std::string s;
          for (const JobEvent& e : ev) {
            if (e.kind == JobEvent::Kind::Token) {
              pending->add(e);
            } else if (e.kind == JobEvent::Kind::Delta && e.delta.kind == chat::StreamDelta::Kind::Content && !e.delta.text.empty()) {
              s += "data: " + dump(wrap(Json::array({with_pending(e.delta.text, nullptr)}))) + "\n\n";
            }
          }
          return s;
        };
        ctx->finish = [with_pending, wrap](const JobResult& r) {
          Json last = wrap(Json::array({with_pending("", r.finish == FinishReason::kLength ? "length" : "stop")}));
          last["usage"] = usage_json(r);
          return "data: " + dump(last) + "\n\ndata: [DONE]\n\n";
        };
        ctx->error = [](const std::string& m) {
          return "data: " + dump(openai_error_json(ApiError(500, m, "server_error"))) + "\n\ndata: [DONE]\n\n";
        };
        ctx->keepalive = ": keep-alive\n\n";
      } else {
        ctx->events = [](const std::vector<JobEvent>&) { return std::string(); };
        ctx->finish = [choice, wrap](const JobResult& r) {
          Json out = wrap(Json::array({choice(r.text, &r.tokens, &r.samples, r.finish == FinishReason::kLength ? "length" : "stop")}));
          out["usage"] = usage_json(r);
          return dump(out) + "\n";
        };
        ctx->error = [](const std::string& m) { return dump(openai_error_json(ApiError(500, m, "server_error"))) + "\n"; };
        ctx->keepalive = "\n";
      }
      const std::string path = req.path;
      ctx->on_end = [this, id, path](const std::shared_ptr<Job>& j) { log_request(id, path, *j); };
      stream(res, stream_mode ? "text/event-stream" : "application/json", ctx);
    } catch (const ApiError& e) {
      send_error(res, e, false);
      log_line("request " + id + " " + req.path + " status=" + std::to_string(e.status()) + " error=" + e.what());
    } catch (const std::exception& e) {
      send_error(res, ApiError(500, std::string("internal error: ") + e.what(), "server_error"), false);
    }
  }

  void handle_tokenize(const httplib::Request& req, httplib::Response& res) {
    try {
      Json body = parse_body(req);
      if (!body.is_object()) throw bad_request("the request body must be a JSON object");
      const Json* text = nullptr;
      for (const char* k : {"content", "prompt", "text"})
        if (auto it = body.find(k); it != body.end()) text = &*it;
      if (!text || !text->is_string()) throw bad_request("'content' must be a string", "content");
      std::vector<int32_t> ids = tok->encode(text->get<std::string>());
      Json out = Json::object({{"tokens", ids}, {"count", ids.size()}});
      res.set_content(dump(out) + "\n", "application/json");
    } catch (const ApiError& e) {
      send_error(res, e, false);
    } catch (const std::exception& e) {
      send_error(res, bad_request(e.what()), false);
    }
  }

  void handle_detokenize(const httplib::Request& req, httplib::Response& res) {
    try {
      Json body = parse_body(req);
      if (!body.is_object()) throw bad_request("the request body must be a JSON object");
      auto it = body.find("tokens");
      if (it == body.end() || !it->is_array()) throw bad_request("'tokens' must be an array of token ids", "tokens");
      std::vector<int32_t> ids;
      for (const Json& x : *it) {
        if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= tok->vocab_size())
          throw bad_request("'tokens' must hold token ids in [0, " + std::to_string(tok->vocab_size()) + ")", "tokens");
        ids.push_back(static_cast<int32_t>(x.get<int64_t>()));
      }
      res.set_content(dump(Json::object({{"content", tok->decode(ids)}})) + "\n", "application/json");
    } catch (const ApiError& e) {
      send_error(res, e, false);
    } catch (const std::exception& e) {
      send_error(res, bad_request(e.what()), false);
    }
  }

  void routes() {
    svr.new_task_queue = [n = opt.http_threads] { return new httplib::ThreadPool(static_cast<size_t>(n)); };
    svr.set_payload_max_length(opt.max_body_bytes);
    svr.set_read_timeout(30, 0);
    svr.set_write_timeout(30, 0);
    svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      // The page itself is public (it holds no data; its API calls carry the key).
      if (req.path == "/health" || (req.path == "/" && req.method == "GET") || authorized(req))
        return httplib::Server::HandlerResponse::Unhandled;
      send_error(res, ApiError(401, "Authentication Fails: a valid API key is required (Authorization: Bearer KEY or x-api-key)",
                               "authentication_error", "", "invalid_api_key"),
                 req.path.find("/messages") != std::string::npos);
      return httplib::Server::HandlerResponse::Handled;
    });
    svr.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      std::string msg = "error";
      if (res.status == 404) msg = "no route for " + req.method + " " + req.path;
      else if (res.status == 413) msg = "the request body is too large (limit " + std::to_string(opt.max_body_bytes) + " bytes)";
      else if (res.status == 400) msg = "malformed HTTP request";
      ++metrics.requests_failed;
      res.set_content(dump(openai_error_json(ApiError(res.status, msg))) + "\n", "application/json");
    });
    svr.set_exception_handler([this](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string msg = "internal error";
      try {
        if (ep) std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        msg += std::string(": ") + e.what();
      } catch (...) {
      }
      send_error(res, ApiError(500, msg, "server_error"), false);
    });
    for (const std::string prefix : {"/v1", ""}) {
      svr.Post(prefix + "/chat/completions", [this](const httplib::Request& q, httplib::Response& r) { handle_chat(q, r, false); });
      svr.Post(prefix + "/messages", [this](const httplib::Request& q, httplib::Response& r) { handle_chat(q, r, true); });
      svr.Post(prefix + "/messages/count_tokens", [this](const httplib::Request& q, httplib::Response& r) { handle_count_tokens(q, r); });
      svr.Post(prefix + "/completions", [this](const httplib::Request& q, httplib::Response& r) { handle_completion(q, r); });
      svr.Get(prefix + "/models", [this](const httplib::Request&, httplib::Response& r) {
        Json m = Json::object({{"id", opt.info.model_id}, {"object", "model"}, {"created", 0}, {"owned_by", "dsv4"},
                               {"context_length", opt.info.context}});
        r.set_content(dump(Json::object({{"object", "list"}, {"data", Json::array({m})}})) + "\n", "application/json");
      });
    }
    // Responses API: create, retrieve, delete, cancel (ids are resp_ + hex).
    for (const std::string prefix : {"/v1", ""}) {
      svr.Post(prefix + "/responses", [this](const httplib::Request& q, httplib::Response& r) { handle_responses(q, r); });
      svr.Get(prefix + R"(/responses/([A-Za-z0-9_-]+))", [this](const httplib::Request& q, httplib::Response& r) {
        const std::string rid = q.matches[1];
        if (auto s = responses.get(rid)) r.set_content(dump(s->response) + "\n", "application/json");
        else send_error(r, response_not_found(rid), false);
      });
      svr.Delete(prefix + R"(/responses/([A-Za-z0-9_-]+))", [this](const httplib::Request& q, httplib::Response& r) {
        const std::string rid = q.matches[1];
        if (responses.erase(rid))
          r.set_content(dump(Json::object({{"id", rid}, {"object", "response"}, {"deleted", true}})) + "\n", "application/json");
        else send_error(r, response_not_found(rid), false);
      });
      svr.Post(prefix + R"(/responses/([A-Za-z0-9_-]+)/cancel)", [this](const httplib::Request& q, httplib::Response& r) {
        const std::string rid = q.matches[1];
        if (auto snap = responses.cancel(rid)) {
          (*snap)["status"] = "cancelled";
          r.set_content(dump(*snap) + "\n", "application/json");
        } else if (auto s = responses.get(rid)) {
          send_error(r, bad_request("Response '" + rid + "' has already finished (status " + s->response["status"].get<std::string>() +
                                    "); only a response in progress can be cancelled"), false);
        } else {
          send_error(r, response_not_found(rid), false);
        }
      });
    }
    svr.Post("/anthropic/v1/messages", [this](const httplib::Request& q, httplib::Response& r) { handle_chat(q, r, true); });
    svr.Post("/anthropic/v1/messages/count_tokens", [this](const httplib::Request& q, httplib::Response& r) { handle_count_tokens(q, r); });
    svr.Get("/", [](const httplib::Request&, httplib::Response& r) {
      r.set_header("Cache-Control", "no-cache");
      r.set_content(chat_page_html(), "text/html; charset=utf-8");
    });
    svr.Post("/tokenize", [this](const httplib::Request& q, httplib::Response& r) { handle_tokenize(q, r); });
    svr.Post("/detokenize", [this](const httplib::Request& q, httplib::Response& r) { handle_detokenize(q, r); });
    svr.Get("/health", [this](const httplib::Request&, httplib::Response& r) {
      r.set_content(dump(Json::object({{"status", "ok"}, {"active", scheduler.active()}, {"queued", scheduler.queued()}})) + "\n",
                    "application/json");
    });
    svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& r) {
      const PrefixCache::DiskStats d = scheduler.cache().disk_stats();
      DiskCacheMetrics dm{d.enabled, d.entries, d.bytes, d.hits, d.hit_tokens, d.writes, d.errors, d.skipped};
      r.set_content(metrics.prometheus(scheduler.active(), scheduler.queued(), scheduler.parallel(), scheduler.cache().entries(),
                                       scheduler.cache().bytes()) +
                        prometheus_disk_cache(dm),
                    "text/plain; version=0.0.4");
    });
  }
};

HttpServer::HttpServer(std::shared_ptr<const ModelWeights> model, std::shared_ptr<const Tokenizer> tokenizer, ServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(model), std::move(tokenizer), std::move(options))) {}

HttpServer::~HttpServer() { stop(); }

int HttpServer::bind() {
  auto& s = impl_->svr;
  if (impl_->opt.port == 0) impl_->port = s.bind_to_any_port(impl_->opt.host);
  else impl_->port = s.bind_to_port(impl_->opt.host, impl_->opt.port) ? impl_->opt.port : -1;
  if (impl_->port <= 0) throw Error("cannot listen on " + impl_->opt.host + ":" + std::to_string(impl_->opt.port));
  return impl_->port;
}

void HttpServer::serve() { impl_->svr.listen_after_bind(); }

void HttpServer::stop() {
  if (!impl_ || impl_->stopped.exchange(true)) return;
  impl_->scheduler.shutdown();
  // Give cancelled streams a moment to write their last chunk before the sockets close.
  for (int i = 0; i < 100 && impl_->scheduler.active() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  impl_->svr.stop();
  // Every session is back in the prefix cache once the scheduler thread ends: write it out.
  impl_->scheduler.stop_and_persist();
}

}  // namespace dsv4::server
