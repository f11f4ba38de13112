// A `tiny` preset random model with the real V4 tokenizer, created once per build tree
// (tests of the generation loop, the CLI and the server need the full vocabulary).
#pragma once
#include <unistd.h>

#include <filesystem>
#include <string>

#include "base/file.h"
#include "model/init.h"

namespace dsv4::test {

inline std::string tiny_chat_model_dir() {
  namespace fs = std::filesystem;
  const std::string dir = std::string(DSV4_TEST_MODELS_DIR) + "/tiny-seed0";
  if (file_exists(dir + "/config.json")) return dir;
  fs::create_directories(DSV4_TEST_MODELS_DIR);
  // Several test processes may get here at once: each builds its own copy and renames it
  // into place; the losers' renames fail harmlessly.
  fs::path tmp = dir + ".tmp." + std::to_string(::getpid());
  fs::remove_all(tmp);
  InitOptions opt;
  opt.seed = 0;
  opt.tokenizer_gz = std::string(DSV4_ASSETS_DIR) + "/deepseek-v4-tokenizer.json.gz";
  write_random_model(init_preset_config("tiny"), tmp.string(), opt);
  std::error_code ec;
  fs::rename(tmp, dir, ec);
  if (ec) fs::remove_all(tmp);
  return dir;
}

}  // namespace dsv4::test
