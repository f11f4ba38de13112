// `dsv4 run -m DIR -p PROMPT`: one-shot generation through the official chat format, with the
// reasoning shown apart from the answer.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <iterator>

#include "base/error.h"
#include "frontends/cli/commands.h"
#include "frontends/cli/generation_cli.h"
#include "frontends/cli/signals.h"

namespace dsv4::cli {

int cmd_run(int argc, char** argv) {
  CLI::App app{"Generate an answer to one prompt (chat format, reasoning modes)", "dsv4 run"};
  GenerationCliOptions o;
  std::string prompt;
  app.add_option("-p,--prompt", prompt, "the user message (default: read from stdin when it is not a terminal)");
  add_generation_options(app, o);
  CLI11_PARSE(app, argc, argv);

  if (prompt.empty() && !app.count("--prompt")) {
    if (::isatty(STDIN_FILENO)) throw Error("no prompt: pass -p TEXT or pipe the prompt on stdin");
    prompt.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  const ThinkSetting think = parse_think(o.think);
  LoadedModel m = load_model_and_tokenizer(o);
  chat::Json messages = chat::Json::array();
  if (!o.system.empty()) messages.push_back(chat::Json{{"role", "system"}, {"content", o.system}});
  messages.push_back(chat::Json{{"role", "user"}, {"content", prompt}});
  const std::vector<int64_t> ids = render_prompt(*m.tokenizer, messages, think);

  SessionOptions so = session_options(o);
  GenerateParams params = generate_params(o, think);
  apply_spec(o, *m.weights, so, params);
  Session session(m.weights, so);
  if (static_cast<int64_t>(ids.size()) >= session.context())
    throw Error("prompt of " + std::to_string(ids.size()) + " tokens does not fit the context size " + std::to_string(session.context()));
  DeltaPrinter printer(o.hide_reasoning);
  ProgressBar bar("prefill", 256);
  InterruptGuard interrupt;
  GenerateCallbacks cb;
  cb.on_delta = [&](const chat::StreamDelta& d) {
    bar.clear();
    printer(d);
  };
  cb.on_prefill_progress = [&](int64_t done, int64_t total) { bar.update(done, total); };
  cb.should_stop = [&] { return interrupt.requested(); };
  GenerateResult r = generate(session, *m.tokenizer, ids, params, cb);
  bar.clear();
  printer.finish();
  if (o.stats) print_stats(stderr, r, params.sampling.seed);
  return r.finish == FinishReason::kCancelled ? 130 : 0;
}

}  // namespace dsv4::cli
