// Token id lists on the command line: "1,2,3" or "@FILE" (a JSON array of integers).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dsv4::cli {

// Throws Error for malformed lists, non-integers, negative ids and empty lists.
std::vector<int64_t> parse_token_ids(const std::string& arg);

}  // namespace dsv4::cli
