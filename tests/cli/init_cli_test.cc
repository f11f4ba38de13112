// `dsv4 init` end to end through the executable: a tiny model passes `dsv4 check`, the help
// names the presets, and bad options exit non-zero with a message.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <cstdlib>
#include <string>

namespace fs = std::filesystem;

namespace {

struct CmdResult {
  int code;
  std::string out;  // stdout + stderr
};

CmdResult run(const std::string& args) {
  std::string cmd = std::string(DSV4_BIN) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

fs::path temp(const std::string& tag) {
  fs::path d = fs::temp_directory_path() / ("dsv4_init_cli_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}

}  // namespace

TEST(InitCli, TinyPresetPassesCheck) {
  fs::path d = temp("tiny");
  CmdResult r = run("init --preset tiny --seed 3 --out " + d.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(fs::exists(d / "tokenizer.json")) << "the tiny preset has the full vocabulary: tokenizer installed";
  CmdResult c = run("check -m " + d.string());
  EXPECT_EQ(c.code, 0) << c.out;
  EXPECT_NE(c.out.find("vocab 129280"), std::string::npos) << c.out;
  // A second run into the same directory is refused without --force.
  CmdResult again = run("init --preset tiny --seed 3 --out " + d.string());
  EXPECT_NE(again.code, 0);
  EXPECT_NE(again.out.find("--force"), std::string::npos) << again.out;
  EXPECT_EQ(run("init --preset tiny --seed 4 --force --no-tokenizer --out " + d.string()).code, 0);
  fs::remove_all(d);
}

TEST(InitCli, AssetsDirectoryOverride) {
  // $DSV4_ASSETS comes first: a stand-in tokenizer there is the one installed.
  fs::path assets = temp("assets"), d = temp("assets_out");
  fs::create_directories(assets);
  ASSERT_EQ(std::system(("printf '{\"stand\": \"in\"}' | gzip -c > " + (assets / "deepseek-v4-tokenizer.json.gz").string()).c_str()), 0);
  const std::string cmd = "env DSV4_ASSETS=" + assets.string() + " " + std::string(DSV4_BIN) + " init --preset tiny --seed 1 --out " + d.string() + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream in(d / "tokenizer.json");
  std::string tok((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(tok, "{\"stand\": \"in\"}");
  fs::remove_all(assets);
  fs::remove_all(d);
}

TEST(InitCli, ConfigFileAndShardOption) {
  fs::path d = temp("cfg");
  CmdResult r = run("init --config " + std::string(DSV4_TEST_DATA_DIR) + "/tiny-a/checkpoint/config.json --seed 1 --shard-bytes 2M --out " + d.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(fs::exists(d / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(d / "tokenizer.json")) << "vocab 512 cannot use the V4 tokenizer";
  CmdResult c = run("check -m " + d.string());
  EXPECT_EQ(c.code, 0) << c.out;
  fs::remove_all(d);
}

TEST(InitCli, HelpNamesThePresets) {
  CmdResult r = run("init --help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("tiny"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("flash-scaled"), std::string::npos) << r.out;
  CmdResult dry = run("init --preset flash-scaled --dry-run");
  EXPECT_EQ(dry.code, 0) << dry.out;
  EXPECT_NE(dry.out.find("per token"), std::string::npos) << dry.out;
}

TEST(InitCli, BadOptionsExitNonZero) {
  fs::path d = temp("bad");
  fs::path bad_cfg = temp("badcfg");
  fs::create_directories(bad_cfg);
  std::ofstream(bad_cfg / "config.json") << "{\"model_type\": \"deepseek_v4\", \"hidden_size\": 64}";
  const std::string cases[] = {
      "init --preset nope --out " + d.string(),                         // unknown preset
      "init --out " + d.string(),                                       // neither preset nor config
      "init --preset tiny --config x.json --out " + d.string(),         // both
      "init --config /nonexistent.json --out " + d.string(),            // missing file
      "init --config " + (bad_cfg / "config.json").string() + " --out " + d.string(),  // incomplete config
      "init --preset tiny",                                             // no --out
      "init --preset tiny --shard-bytes 12X --out " + d.string(),       // bad size
      "init --preset tiny --seed abc --out " + d.string(),              // bad seed
      "init --preset tiny --out " + d.string() + " extra",              // stray argument
  };
  for (const auto& args : cases) {
    CmdResult r = run(args);
    EXPECT_NE(r.code, 0) << args << "\n" << r.out;
    EXPECT_FALSE(r.out.empty()) << args << ": no message";
  }
  EXPECT_FALSE(fs::exists(d / "config.json"));
  fs::remove_all(d);
  fs::remove_all(bad_cfg);
}
