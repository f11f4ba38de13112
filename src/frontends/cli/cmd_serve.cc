// dsv4 serve: the OpenAI / Anthropic compatible HTTP server (src/frontends/server/).
#include <pthread.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <algorithm>
#include <filesystem>
#include <thread>

#include "frontends/cli/commands.h"
#include "frontends/cli/generation_cli.h"
#include "frontends/server/http_server.h"

namespace dsv4::cli {

int cmd_serve(int argc, char** argv) {
  CLI::App app("OpenAI- and Anthropic-compatible HTTP server", "dsv4 serve");
  GenerationCliOptions g;
  server::ServerOptions o;
  int64_t cache_mb = 4096;
  int64_t max_body_mb = 16;
  int64_t cache_disk_mb = 16384;
  bool quiet = false;
  int64_t prefill_chunk = SessionOptions{}.prefill_chunk;
  std::string alias;
  app.add_option("-m,--model", g.model, "model directory or GGUF file (default: the built-in default model)");
  app.add_option("--host", o.host, "address to bind (default 127.0.0.1: loopback only)");
  app.add_option("--port", o.port, "port (0: any free port; the chosen one is printed)")->check(CLI::Range(0, 65535));
  app.add_option("--api-key", o.api_key, "require Authorization: Bearer KEY (or x-api-key) on every endpoint but /health");
  app.add_option("--parallel", o.scheduler.parallel, "sequences decoded together")->check(CLI::Range(1, 1024));
  app.add_option("-c,--ctx-size", g.context, "context size per sequence (0: the model's max_position_embeddings)")->check(CLI::Range(int64_t(0), int64_t(1) << 40));
  app.add_option("--prefill-chunk", prefill_chunk,
                 "prompt tokens prefilled per batched step (a long prompt is split so running streams keep decoding)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  app.add_option("--max-queue", o.scheduler.max_queue, "requests waiting for a slot before 503")->check(CLI::Range(1, 1 << 20));
  app.add_option("--cache-mb", cache_mb, "memory budget of the prefix cache in MiB")->check(CLI::Range(int64_t(0), int64_t(1) << 30));
  app.add_option("--prefix-cache-dir", o.scheduler.cache_disk.dir,
                 "keep the prefix cache on disk too: entries evicted from RAM and all entries at shutdown are written "
                 "here and reused after a restart");
  app.add_option("--prefix-cache-disk-mb", cache_disk_mb, "disk budget of --prefix-cache-dir in MiB")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 40));
  app.add_option("--max-body-mb", max_body_mb, "largest request body in MiB")->check(CLI::Range(int64_t(1), int64_t(1024)));
  app.add_option("--alias", alias, "model id reported by /v1/models (default deepseek-v4-flash)");
  app.add_option("-n,--n-predict", o.info.max_output_tokens,
                 "most tokens one answer may generate (0: up to the context); a larger max_tokens is clamped (finish reason length)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 40));
  app.add_flag("--strict-model", o.info.strict_model,
               "answer 404 for a model name that is neither the served id nor a DeepSeek alias (default: serve any name)");
  app.add_option("--default-max-tokens", o.info.default_max_tokens, "max_tokens when a chat request gives none (0: up to the context)");
  app.add_option("--responses-store", o.responses_max_entries,
                 "Responses API: finished responses kept for previous_response_id / GET (0: none)")
      ->check(CLI::Range(0, 1 << 24));
  app.add_option("--responses-ttl", o.responses_ttl_seconds, "Responses API: seconds a stored response is kept")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 40));
  app.add_option("--numerics", g.numerics, "reference | precise | int8")->check(CLI::IsMember({"reference", "precise", "int8"}));
  app.add_flag("-q,--quiet", quiet, "no per-request log lines");
  add_spec_options(app, g.spec, g.draft);
  CLI11_PARSE(app, argc, argv);

  // Handle SIGTERM / SIGINT in a dedicated thread (blocked everywhere else, so every thread the
  // server starts inherits the mask), and ignore SIGPIPE: a client that disconnects must only
  // fail a write.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  try {
    LoadedModel m = load_model_and_tokenizer(g);
    o.scheduler.session = session_options(g);
    o.scheduler.session.prefill_chunk = prefill_chunk;
    // Speculation (scheduler.h has the rule): auto = greedy jobs alone in a step, stopping
    // below kAutoMinAcceptance; mtp = every job alone in a step.
    o.scheduler.spec_draft = spec_draft(g.spec, g.draft, *m.weights);
    o.scheduler.session.mtp = o.scheduler.spec_draft > 0;
    o.scheduler.spec_sampled = g.spec == "mtp";
    if (g.spec == "auto") o.scheduler.spec_min_acceptance = kAutoMinAcceptance;
    o.scheduler.cache_budget_bytes = static_cast<size_t>(cache_mb) << 20;
    o.scheduler.cache_disk.budget_bytes = static_cast<size_t>(cache_disk_mb) << 20;
    o.max_body_bytes = static_cast<size_t>(max_body_mb) << 20;
    o.log_requests = !quiet;
    // One HTTP worker per connection that may be waiting or generating, so queued requests still
    // get their keep-alives (httplib's pool holds a thread per open request).
    o.http_threads = std::min(4096, o.scheduler.parallel + o.scheduler.max_queue + 8);
    if (!alias.empty()) o.info.model_id = alias;
    std::shared_ptr<const Tokenizer> tok(std::move(m.tokenizer));
    server::HttpServer srv(m.weights, tok, o);
    const int port = srv.bind();
    fprintf(stderr, "dsv4 serve: listening on http://%s:%d (model %s, parallel %d)\n", o.host.c_str(), port, m.dir.c_str(),
            o.scheduler.parallel);
    fflush(stderr);
    std::thread sig([&] {
      int s = 0;
      sigwait(&set, &s);
      fprintf(stderr, "dsv4 serve: signal %d, shutting down\n", s);
      srv.stop();
    });
    srv.serve();
    // serve() returned without a signal (listener failure): wake the signal thread.
    pthread_kill(sig.native_handle(), SIGTERM);
    sig.join();
    fprintf(stderr, "dsv4 serve: stopped\n");
    return 0;
  } catch (const std::exception& e) {
    fprintf(stderr, "dsv4 serve: %s\n", e.what());
    return 1;
  }
}

}  // namespace dsv4::cli
