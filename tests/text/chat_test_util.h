// Shared helpers for the chat tests: load the golden JSONL files (repo copies under
// tests/data/chat) with Python JSON semantics, so key order and numbers stay exact.
#pragma once

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "text/json_py.h"

namespace dsv4::testutil {

inline std::vector<json_py::Json> load_jsonl(const std::string& name) {
  std::ifstream in(std::string(DSV4_TEST_DATA_DIR) + "/chat/" + name, std::ios::binary);
  std::vector<json_py::Json> out;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(json_py::loads(line));
  return out;
}

}  // namespace dsv4::testutil
