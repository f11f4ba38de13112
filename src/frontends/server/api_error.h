// An error a request handler returns to the client: HTTP status + OpenAI-shaped body
// {"error": {"message", "type", "param", "code"}} (the Anthropic routes rewrap it).
#pragma once
#include <string>

#include "base/error.h"

namespace dsv4::server {

class ApiError : public Error {
 public:
  ApiError(int status, std::string message, std::string type = "invalid_request_error", std::string param = "",
           std::string code = "")
      : Error(message), status_(status), type_(std::move(type)), param_(std::move(param)), code_(std::move(code)) {}
  int status() const { return status_; }
  const std::string& type() const { return type_; }
  const std::string& param() const { return param_; }
  const std::string& code() const { return code_.empty() ? type_ : code_; }

 private:
  int status_;
  std::string type_, param_, code_;
};

inline ApiError bad_request(std::string message, std::string param = "") {
  return ApiError(400, std::move(message), "invalid_request_error", std::move(param));
}

}  // namespace dsv4::server
