#include "frontends/cli/token_ids.h"

#include <cctype>
#include <charconv>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/file.h"

namespace dsv4::cli {

std::vector<int64_t> parse_token_ids(const std::string& arg) {
  std::vector<int64_t> ids;
  if (!arg.empty() && arg[0] == '@') {
    const std::string path = arg.substr(1);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_file(path));
    } catch (const nlohmann::json::exception& e) {
      throw Error("--tokens " + path + ": not valid JSON: " + e.what());
    }
    if (!j.is_array()) throw Error("--tokens " + path + ": expected a JSON array of integers");
    for (size_t i = 0; i < j.size(); ++i) {
      const auto& v = j[i];
      if (!v.is_number_integer()) throw Error("--tokens " + path + ": element " + std::to_string(i) + " is not an integer");
      ids.push_back(v.get<int64_t>());
    }
  } else {
    if (arg.find_first_not_of(" \t\n") == std::string::npos) throw Error("--tokens: empty token list");
    size_t i = 0;
    while (i <= arg.size()) {
      size_t j = arg.find(',', i);
      if (j == std::string::npos) j = arg.size();
      std::string item = arg.substr(i, j - i);
      size_t a = 0, b = item.size();
      while (a < b && std::isspace(static_cast<unsigned char>(item[a]))) ++a;
      while (b > a && std::isspace(static_cast<unsigned char>(item[b - 1]))) --b;
      item = item.substr(a, b - a);
      int64_t v = 0;
      auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
      if (item.empty() || ec != std::errc() || ptr != item.data() + item.size())
        throw Error("--tokens: \"" + item + "\" is not an integer token id");
      ids.push_back(v);
      i = j + 1;
      if (j == arg.size()) break;
    }
  }
  if (ids.empty()) throw Error("--tokens: empty token list");
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0) throw Error("--tokens: negative token id " + std::to_string(ids[i]) + " at index " + std::to_string(i));
  return ids;
}

}  // namespace dsv4::cli
