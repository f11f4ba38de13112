#include "frontends/cli/default_model.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include "base/error.h"
#include "base/file.h"
#include "model/init.h"

#ifndef DSV4_ASSETS_DIR
#define DSV4_ASSETS_DIR ""
#endif

namespace dsv4::cli {

namespace fs = std::filesystem;

namespace {

// Where shipped assets may live, in order: $DSV4_ASSETS, the source tree's assets/ (compiled
// in), assets/ next to or above the executable.
std::vector<std::string> asset_dirs() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("DSV4_ASSETS"); env && *env) dirs.push_back(env);
  if (*DSV4_ASSETS_DIR) dirs.push_back(DSV4_ASSETS_DIR);
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    dirs.push_back((exe.parent_path() / "assets").string());
    dirs.push_back((exe.parent_path().parent_path() / "assets").string());
  }
  return dirs;
}

}  // namespace

std::string find_tokenizer_asset() {
  static constexpr const char* kTokenizerAsset = "deepseek-v4-tokenizer.json.gz";
  std::string tried;
  for (const auto& d : asset_dirs()) {
    std::string p = d + "/" + kTokenizerAsset;
    if (file_exists(p)) return p;
    tried += (tried.empty() ? "" : ", ") + p;
  }
  throw Error("tokenizer asset not found (tried " + tried + "); set DSV4_ASSETS");
}

std::string find_shipped_default_model() {
  for (const auto& d : asset_dirs()) {
    std::string p = d + "/default-model";
    if (file_exists(p + "/config.json")) return p;
  }
  return {};
}

std::string ensure_default_model(bool verbose) {
  std::string dir;
  if (const char* env = std::getenv("DSV4_DEFAULT_MODEL"); env && *env) {
    dir = env;
  } else if (std::string shipped = find_shipped_default_model(); !shipped.empty()) {
    return shipped;
  } else {
    std::string cache;
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) cache = x;
    else if (const char* h = std::getenv("HOME"); h && *h) cache = std::string(h) + "/.cache";
    else throw Error("cannot place the default model: neither HOME nor XDG_CACHE_HOME is set (use -m DIR)");
    dir = cache + "/dsv4/models/tiny-default-1m";  // -1m: the long-context tiny preset (the 4K one lives in tiny-default)
  }
  if (file_exists(dir + "/config.json")) return dir;
  if (verbose) std::fprintf(stderr, "dsv4: creating the default model (preset tiny, random weights) in %s\n", dir.c_str());
  // Build it beside the final place and rename, so an interrupted run never leaves a
  // half-written default model behind.
  fs::path final_dir(dir);
  fs::create_directories(final_dir.parent_path());
  fs::path tmp = final_dir.parent_path() / (final_dir.filename().string() + ".tmp." + std::to_string(::getpid()));
  fs::remove_all(tmp);
  InitOptions opt;
  opt.seed = 0;
  opt.tokenizer_gz = find_tokenizer_asset();
  write_random_model(init_preset_config("tiny"), tmp.string(), opt);
  std::error_code ec;
  fs::rename(tmp, final_dir, ec);
  if (ec) {
    fs::remove_all(tmp);
    if (!file_exists(dir + "/config.json")) throw Error(dir + ": cannot create the default model: " + ec.message());
  }
  return dir;
}

}  // namespace dsv4::cli
