// `dsv4 train ...`: runs the trainer executable dsv4-train (installed next to dsv4) with the
// same arguments. The trainer links libtorch; keeping it a separate program keeps libtorch out
// of dsv4 itself.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "base/error.h"
#include "frontends/cli/commands.h"

namespace dsv4::cli {

int cmd_train(int argc, char** argv) {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  std::string trainer = ec ? std::string("dsv4-train") : (self.parent_path() / "dsv4-train").string();
  if (const char* env = std::getenv("DSV4_TRAIN_BIN")) trainer = env;
  std::vector<char*> args;
  args.push_back(trainer.data());
  for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  ::execv(trainer.c_str(), args.data());
  throw Error("cannot run the trainer " + trainer + ": " + std::strerror(errno) +
              " (dsv4-train is built when libtorch is installed: apt-get install libtorch-dev, then rebuild)");
}

}  // namespace dsv4::cli
