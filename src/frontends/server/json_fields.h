// Typed access to the fields of a request body, shared by the request parsers of every route
// (chat_request.cc, anthropic.cc, responses_request.cc). A field that is absent or null reads
// as "not given"; a field of the wrong type or range is an ApiError 400 naming it.
#pragma once
#include <cstdint>
#include <string>

#include "text/json_py.h"
#include "frontends/server/api_error.h"

namespace dsv4::server {

using Json = json_py::Json;

// The field's value, or nullptr when it is absent or null.
const Json* field(const Json& obj, const char* key);

double get_number(const Json& body, const char* key, double lo, double hi, double def);
int64_t get_int(const Json& body, const char* key, int64_t lo, int64_t hi, int64_t def);
bool get_bool(const Json& body, const char* key, bool def);
// A string field; `def` when absent. Throws ApiError (param `param`, or `key` if empty).
std::string get_string(const Json& body, const char* key, const std::string& def, const std::string& param = "");

}  // namespace dsv4::server
