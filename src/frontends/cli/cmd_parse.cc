// Placeholder until the owning issue lands; replaced by the real command.
#include <cstdio>

#include "frontends/cli/commands.h"

namespace dsv4::cli {

int cmd_parse(int, char**) {
  std::fprintf(stderr, "dsv4 parse: not implemented yet\n");
  return 2;
}

}  // namespace dsv4::cli
