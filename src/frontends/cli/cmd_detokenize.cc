// `dsv4 detokenize --tokenizer PATH [--skip-special]`: a JSON array of token ids on stdin ->
// the decoded text on stdout, byte for byte (no newline added). Bytes that do not form UTF-8
// become U+FFFD. Malformed JSON or an unknown id is an error (exit 1).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "base/error.h"
#include "frontends/cli/commands.h"
#include "text/tokenizer.h"

namespace dsv4::cli {

std::string read_stdin();  // cmd_tokenize.cc

int cmd_detokenize(int argc, char** argv) {
  CLI::App app{"Decode a JSON array of token ids from stdin into text", "dsv4 detokenize"};
  std::string path;
  bool skip_special = false;
  app.add_option("-t,--tokenizer", path, "tokenizer.json or tokenizer.json.gz")->required();
  app.add_flag("--skip-special", skip_special, "drop tokens flagged special (BOS, EOS, ...)");
  CLI11_PARSE(app, argc, argv);
  Tokenizer tok = Tokenizer::load(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_stdin());
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("stdin: invalid JSON: ") + e.what());
  }
  if (!j.is_array()) throw Error("stdin: expected a JSON array of token ids");
  std::vector<int32_t> ids;
  ids.reserve(j.size());
  for (size_t i = 0; i < j.size(); ++i) {
    const auto& v = j[i];
    if (!v.is_number_integer() || v.get<int64_t>() < INT32_MIN || v.get<int64_t>() > INT32_MAX)
      throw Error("stdin: element " + std::to_string(i) + " is not a token id: " + v.dump());
    ids.push_back(int32_t(v.get<int64_t>()));
  }
  std::string text = tok.decode(ids, skip_special);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace dsv4::cli
