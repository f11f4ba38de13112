// `dsv4 tokenize --tokenizer PATH [--no-special]`: UTF-8 text on stdin -> JSON array of ids on
// stdout (one line). No BOS is added. Invalid UTF-8 is an error (exit 1).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "base/error.h"
#include "frontends/cli/commands.h"
#include "text/tokenizer.h"

namespace dsv4::cli {

std::string read_stdin() {
  std::string data;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) data.append(buf, n);
  if (std::ferror(stdin)) throw Error("cannot read stdin");
  return data;
}

int cmd_tokenize(int argc, char** argv) {
  CLI::App app{"Tokenize UTF-8 text from stdin; prints a JSON array of token ids", "dsv4 tokenize"};
  std::string path;
  bool no_special = false;
  app.add_option("-t,--tokenizer", path, "tokenizer.json or tokenizer.json.gz")->required();
  app.add_flag("--no-special", no_special, "treat added/special-token text as plain text");
  CLI11_PARSE(app, argc, argv);
  Tokenizer tok = Tokenizer::load(path);
  std::string text = read_stdin();
  std::vector<int32_t> ids;
  try {
    ids = tok.encode(text, !no_special);
  } catch (const Error& e) {
    throw Error(std::string("stdin: ") + e.what());
  }
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(ids[i]);
  }
  out += "]\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace dsv4::cli
