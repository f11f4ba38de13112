// dsv4: one executable, many subcommands (`dsv4 <command> --help`).
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "base/error.h"
#include "frontends/cli/commands.h"

namespace {

struct Command {
  const char* name;
  int (*run)(int, char**);
  const char* help;
};

constexpr Command kCommands[] = {
    {"run", dsv4::cli::cmd_run, "generate an answer to one prompt (-m DIR -p TEXT)"},
    {"chat", dsv4::cli::cmd_chat, "interactive chat with the model"},
    {"serve", dsv4::cli::cmd_serve, "OpenAI / Anthropic compatible HTTP server (-m DIR --port N)"},
    {"eval", dsv4::cli::cmd_eval, "task suites against -m MODEL or --endpoint URL, per reasoning mode: report + chart"},
    {"convert", dsv4::cli::cmd_convert, "official checkpoint -> deepseek4 GGUF (-m DIR --out FILE.gguf)"},
    {"check", dsv4::cli::cmd_check, "validate a model directory (config + every tensor)"},
    {"logits", dsv4::cli::cmd_logits, "compute logits of a token sequence (prefill / decode)"},
    {"block", dsv4::cli::cmd_block, "run one block on given input streams (teacher forcing)"},
    {"tokenize", dsv4::cli::cmd_tokenize, "UTF-8 text on stdin -> JSON array of token ids"},
    {"detokenize", dsv4::cli::cmd_detokenize, "JSON array of ids on stdin -> text"},
    {"tokenizer", dsv4::cli::cmd_tokenizer, "tokenizer train: a byte-level BPE tokenizer.json from text / JSONL files"},
    {"render", dsv4::cli::cmd_render, "chat messages (JSON on stdin) -> prompt text or ids"},
    {"parse", dsv4::cli::cmd_parse, "completion text on stdin -> assistant message JSON"},
    {"init", dsv4::cli::cmd_init, "write a random model (presets: tiny, flash-scaled) in the official layout"},
    {"kv", dsv4::cli::cmd_kv, "KV cache bytes at a context length, by component, vs DeepSeek-V3.2"},
    {"bench", dsv4::cli::cmd_bench, "measure bandwidth, GEMM peak, prefill and decode speed"},
    {"tasks", dsv4::cli::cmd_tasks, "task suites with verifiable answers: tasks list; tasks write --suite S --out FILE.jsonl"},
    {"train", dsv4::cli::cmd_train, "pre-train a V4 model (--config run.json); train export / train data prepare"},
};

void usage(FILE* out) {
  std::fprintf(out, "usage: dsv4 <command> [options]\n\ncommands:\n");
  for (const auto& c : kCommands) std::fprintf(out, "  %-12s %s\n", c.name, c.help);
  std::fprintf(out, "\n`dsv4 <command> --help` describes a command's options.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    usage(stdout);
    return 0;
  }
  for (const auto& c : kCommands) {
    if (name == c.name) {
      std::string prog = std::string("dsv4 ") + c.name;
      argv[1] = prog.data();
      try {
        return c.run(argc - 1, argv + 1);
      } catch (const dsv4::Error& e) {
        std::fprintf(stderr, "dsv4 %s: error: %s\n", c.name, e.what());
        return 1;
      } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "dsv4 %s: error: out of memory\n", c.name);
        return 1;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "dsv4 %s: error: %s\n", c.name, e.what());
        return 1;
      }
    }
  }
  std::fprintf(stderr, "dsv4: unknown command '%s'\n", name.c_str());
  usage(stderr);
  return 2;
}
