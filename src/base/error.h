// Error type used across dsv4: one line that names the file / tensor / field at fault.
#pragma once
#include <stdexcept>
#include <string>

namespace dsv4 {

// Thrown for every user-facing failure (bad model files, bad input, bad options).
// Frontends print what() on one line and exit non-zero.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace dsv4
