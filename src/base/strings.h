// Small string helpers shared by option parsers.
#pragma once
#include <string>
#include <vector>

namespace dsv4 {

// "a,b,,c" -> {"a", "b", "", "c"}; "" -> {""}. Callers decide what an empty item means.
inline std::vector<std::string> split_list(const std::string& s, char sep = ',') {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t end = s.find(sep, start);
    out.push_back(s.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) return out;
    start = end + 1;
  }
}

}  // namespace dsv4
