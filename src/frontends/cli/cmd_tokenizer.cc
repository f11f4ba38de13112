// `dsv4 tokenizer train --vocab-size N --out tokenizer.json [--template T] FILES...`: learns a
// byte-level BPE with the V4 pre-tokenizer and every V4 added token (copied from the template,
// by default the release tokenizer in assets/) and writes tokenizer.json atomically. FILES are
// text files (one document each) or .jsonl files (the "text" field of each line).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/file.h"
#include "frontends/cli/commands.h"
#include "frontends/cli/default_model.h"
#include "text/tokenizer_train.h"

namespace dsv4::cli {
namespace {

int tokenizer_train(int argc, char** argv) {
  CLI::App app{"Train a byte-level BPE tokenizer.json (V4 pre-tokenizer and special tokens)",
               "dsv4 tokenizer train"};
  int32_t vocab_size = 0;
  std::string out, tmpl;
  std::vector<std::string> files;
  app.add_option("--vocab-size", vocab_size,
                 "every id: added tokens + 256 bytes + merges (the model's config.json vocab_size)")
      ->required();
  app.add_option("--out", out, "tokenizer.json to write")->required();
  app.add_option("--template", tmpl,
                 "tokenizer.json(.gz) giving pre-tokenizer, decoder and added tokens (default: the release's, "
                 "assets/deepseek-v4-tokenizer.json.gz)");
  app.add_option("files", files, "text files, or .jsonl files with a \"text\" field per line")->required();
  CLI11_PARSE(app, argc, argv);

  if (tmpl.empty()) tmpl = find_tokenizer_asset();
  BpeTrainer trainer(tmpl);
  for (const std::string& f : files) trainer.add_file(f);
  BpeTrainResult r = trainer.train(vocab_size);
  write_file_atomic(out, r.json);
  std::fprintf(stderr, "%s: %d ids (%d model vocab, %d merges, %d added tokens) from %llu distinct words\n",
               out.c_str(), r.vocab_size, r.model_vocab, r.merges, r.added_tokens,
               static_cast<unsigned long long>(r.distinct_words));
  if (r.vocab_size < vocab_size)
    std::fprintf(stderr, "warning: the corpus ran out of pairs to merge: %d ids instead of %d\n", r.vocab_size,
                 vocab_size);
  return 0;
}

}  // namespace

int cmd_tokenizer(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "train") {
    std::string prog = "dsv4 tokenizer train";
    argv[1] = prog.data();
    return tokenizer_train(argc - 1, argv + 1);
  }
  std::fprintf(stderr, "usage: dsv4 tokenizer train --vocab-size N --out tokenizer.json [--template T] FILES...\n");
  return argc >= 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") ? 0 : 2;
}

}  // namespace dsv4::cli
