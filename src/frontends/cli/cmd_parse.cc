// `dsv4 parse --thinking-mode thinking|chat [--lenient]`: completion text on stdin (what the
// model generated after the prompt, special tokens included) -> the assistant message as JSON:
// {"role", "content", "reasoning_content", "tool_calls": [{"type", "function": {"name",
// "arguments"}}]}. Strict mode is the official parser (malformed output exits 1 with the
// reason); --lenient applies the server rules documented in text/output_parser.h.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include "base/error.h"
#include "frontends/cli/commands.h"
#include "text/chat_encoder.h"
#include "text/json_py.h"
#include "text/output_parser.h"

namespace dsv4::cli {

int cmd_parse(int argc, char** argv) {
  CLI::App app{"Parse DeepSeek-V4 completion text (stdin) into an assistant message", "dsv4 parse"};
  std::string mode_str;
  bool lenient = false;
  app.add_option("--thinking-mode", mode_str, "thinking or chat (how the prompt ended)")
      ->required()
      ->check(CLI::IsMember({"thinking", "chat"}));
  app.add_flag("--lenient", lenient, "accept truncated / malformed output (server rules)");
  CLI11_PARSE(app, argc, argv);

  std::ios::sync_with_stdio(false);
  std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  if (std::string e = json_py::utf8_error(text); !e.empty()) throw Error("stdin: " + e);
  chat::ThinkingMode mode = chat::parse_thinking_mode(mode_str);
  chat::ParsedMessage m = lenient ? chat::parse_completion_lenient(text, mode) : chat::parse_completion_strict(text, mode);
  std::string out = json_py::dumps(chat::message_to_json(m)) + "\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace dsv4::cli
