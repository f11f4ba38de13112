// `dsv4 chat -m DIR`: interactive multi-turn chat with line editing (libedit). Earlier turns
// are re-rendered with the official encoder each turn; the session reuses the common token
// prefix (after a dropped reasoning block it rewinds through its checkpoint).
// Commands: /think none|high|max, /system TEXT, /reset, /stats, /help, /exit. Ctrl-C stops a
// generation and returns to the prompt; Ctrl-D (or Ctrl-C at an empty prompt) exits.
#include <editline/readline.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "base/error.h"
#include "frontends/cli/commands.h"
#include "frontends/cli/generation_cli.h"
#include "frontends/cli/signals.h"

namespace dsv4::cli {

namespace {

struct ChatTotals {
  int64_t turns = 0, prompt_tokens = 0, cached_tokens = 0, generated_tokens = 0;
};

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

const char* kHelp =
    "commands:\n"
    "  /think none|high|max   reasoning mode (none = chat mode)\n"
    "  /system TEXT           set the system prompt (applies from the next turn)\n"
    "  /reset                 forget the conversation\n"
    "  /stats                 token counts and speeds\n"
    "  /exit                  quit (also Ctrl-D)\n"
    "Ctrl-C stops the answer being generated.\n";

}  // namespace

int cmd_chat(int argc, char** argv) {
  CLI::App app{"Interactive chat (multi-turn, reasoning modes, line editing)", "dsv4 chat"};
  GenerationCliOptions o;
  add_generation_options(app, o);
  CLI11_PARSE(app, argc, argv);

  ThinkSetting think = parse_think(o.think);
  LoadedModel m = load_model_and_tokenizer(o);
  SessionOptions so = session_options(o);
  GenerateParams params = generate_params(o, think);
  apply_spec(o, *m.weights, so, params);
  Session session(m.weights, so);
  const bool interactive = ::isatty(STDIN_FILENO) != 0;
  chat::Json messages = chat::Json::array();
  std::string system = o.system;
  ChatTotals totals;
  GenerateResult last;
  bool have_last = false;
  InterruptGuard interrupt;  // Ctrl-C never kills the process while chatting

  if (interactive)
    std::fprintf(stderr, "dsv4 chat: model %s, reasoning %s, context %lld. /help for commands.\n", m.dir.c_str(), think.name.c_str(),
                 (long long)session.context());
  for (;;) {
    std::string line;
    if (interactive) {
      interrupt.clear();
      char* raw = readline("> ");
      if (!raw) {
        if (interrupt.requested()) {  // Ctrl-C at the prompt: a fresh prompt line
          std::fputs("\n", stdout);
          continue;
        }
        std::fputs("\n", stdout);
        break;
      }
      line = raw;
      std::free(raw);
      if (!trim(line).empty()) add_history(line.c_str());
    } else {
      if (!std::getline(std::cin, line)) break;
    }
    const std::string cmd = trim(line);
    if (cmd.empty()) continue;
    if (cmd[0] == '/') {
      if (cmd == "/exit" || cmd == "/quit") break;
      if (cmd == "/help") {
        std::fputs(kHelp, stdout);
      } else if (cmd.rfind("/think", 0) == 0) {
        std::string arg = trim(cmd.substr(6));
        try {
          think = parse_think(arg);
          params.mode = think.mode;
          std::printf("reasoning: %s\n", think.name.c_str());
        } catch (const Error& e) {
          std::printf("%s\n", e.what());
        }
      } else if (cmd.rfind("/system", 0) == 0) {
        system = trim(cmd.substr(7));
        std::printf("system prompt %s\n", system.empty() ? "cleared" : "set");
      } else if (cmd == "/reset") {
        messages = chat::Json::array();
        session.reset();
        have_last = false;
        std::printf("conversation cleared\n");
      } else if (cmd == "/stats") {
        std::printf("turns %lld, prompt tokens %lld (cached %lld), generated %lld, session %lld/%lld tokens\n", (long long)totals.turns,
                    (long long)totals.prompt_tokens, (long long)totals.cached_tokens, (long long)totals.generated_tokens,
                    (long long)session.size(), (long long)session.context());
        if (have_last) print_stats(stdout, last, params.sampling.seed);
      } else {
        std::printf("unknown command %s (/help lists them)\n", cmd.c_str());
      }
      std::fflush(stdout);
      continue;
    }

    chat::Json turn = messages;
    turn.push_back(chat::Json{{"role", "user"}, {"content", line}});
    chat::Json rendered = chat::Json::array();
    if (!system.empty()) rendered.push_back(chat::Json{{"role", "system"}, {"content", system}});
    for (const auto& msg : turn) rendered.push_back(msg);
    std::vector<int64_t> ids;
    try {
      ids = render_prompt(*m.tokenizer, rendered, think);
      if (static_cast<int64_t>(ids.size()) >= session.context())
        throw Error("the conversation (" + std::to_string(ids.size()) + " tokens) no longer fits the context size " +
                    std::to_string(session.context()) + "; /reset to start over");
    } catch (const Error& e) {
      std::printf("error: %s\n", e.what());
      continue;
    }
    DeltaPrinter printer(o.hide_reasoning);
    ProgressBar bar("prefill", 256);
    GenerateCallbacks cb;
    cb.on_delta = [&](const chat::StreamDelta& d) {
      bar.clear();
      printer(d);
    };
    cb.on_prefill_progress = [&](int64_t done, int64_t total) { bar.update(done, total); };
    cb.should_stop = [&] { return interrupt.requested(); };
    interrupt.clear();
    GenerateResult r = generate(session, *m.tokenizer, ids, params, cb);
    bar.clear();
    printer.finish();
    if (r.finish == FinishReason::kCancelled) std::printf("[stopped]\n");
    std::fflush(stdout);
    chat::Json reply{{"role", "assistant"}, {"content", r.message.content}};
    if (think.mode == chat::ThinkingMode::Thinking) reply["reasoning_content"] = r.message.reasoning_content;
    turn.push_back(reply);
    messages = turn;
    ++totals.turns;
    totals.prompt_tokens += r.stats.prompt_tokens;
    totals.cached_tokens += r.stats.cached_tokens;
    totals.generated_tokens += r.stats.generated_tokens;
    last = r;
    have_last = true;
    if (o.stats) print_stats(stderr, r, params.sampling.seed);
  }
  return 0;
}

}  // namespace dsv4::cli
