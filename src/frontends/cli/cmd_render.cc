// `dsv4 render [--tokenizer PATH --ids]`: one JSON object {"messages": [...], "options": {...}}
// on stdin -> the prompt text exactly as the official encoder builds it (no newline added), or
// its token ids as a JSON array with --ids. Options are the reference encode_messages keyword
// arguments (thinking_mode, reasoning_effort, drop_thinking, add_default_bos_token, context)
// plus the dsv4 extensions effort_table and object_arguments (see text/chat_encoder.h).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include "base/error.h"
#include "frontends/cli/commands.h"
#include "text/chat_encoder.h"
#include "text/json_py.h"
#include "text/tokenizer.h"

namespace dsv4::cli {

namespace {

std::string read_stdin() {
  std::ios::sync_with_stdio(false);
  std::string s((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  return s;
}

}  // namespace

int cmd_render(int argc, char** argv) {
  CLI::App app{"Render chat messages (JSON on stdin) into the DeepSeek-V4 prompt", "dsv4 render"};
  std::string tokenizer_path;
  bool ids = false;
  app.add_option("--tokenizer", tokenizer_path, "tokenizer.json or .json.gz (needed with --ids)");
  app.add_flag("--ids", ids, "print the prompt's token ids as a JSON array instead of the text");
  CLI11_PARSE(app, argc, argv);
  if (ids && tokenizer_path.empty()) throw Error("--ids needs --tokenizer PATH");

  std::string input = read_stdin();
  // Checked first so that bad bytes get a precise message rather than a JSON syntax error.
  if (std::string e = json_py::utf8_error(input); !e.empty()) throw Error("stdin: " + e);
  json_py::Json req;
  try {
    req = json_py::loads(input);
  } catch (const json_py::ParseError& e) {
    throw Error(std::string("stdin: ") + e.what());
  }
  if (!req.is_object()) throw Error("stdin: expected a JSON object {\"messages\": [...], \"options\": {...}}");
  for (auto it = req.begin(); it != req.end(); ++it)
    if (it.key() != "messages" && it.key() != "options") throw Error("stdin: unknown key \"" + it.key() + "\"");
  if (!req.contains("messages")) throw Error("stdin: missing \"messages\"");
  chat::EncodeOptions options = chat::options_from_json(req.contains("options") ? req["options"] : json_py::Json());
  std::string prompt = chat::encode_messages(req["messages"], options);

  if (!ids) {
    std::fwrite(prompt.data(), 1, prompt.size(), stdout);
    return std::fflush(stdout) == 0 ? 0 : 1;
  }
  Tokenizer tok = Tokenizer::load(tokenizer_path);
  json_py::Json arr = json_py::Json::array();
  for (int32_t id : tok.encode(prompt)) arr.push_back(id);
  std::string out = json_py::dumps(arr) + "\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace dsv4::cli
