#include "frontends/server/json_fields.h"

#include <cmath>

namespace dsv4::server {

const Json* field(const Json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

double get_number(const Json& body, const char* key, double lo, double hi, double def) {
  const Json* v = field(body, key);
  if (!v) return def;
  if (!v->is_number() || json_py::is_bigint(*v)) throw bad_request(std::string("'") + key + "' must be a number", key);
  const double d = v->get<double>();
  if (!std::isfinite(d) || d < lo || d > hi)
    throw bad_request(std::string("'") + key + "' must be between " + json_py::float_repr(lo) + " and " + json_py::float_repr(hi), key);
  return d;
}

int64_t get_int(const Json& body, const char* key, int64_t lo, int64_t hi, int64_t def) {
  const Json* v = field(body, key);
  if (!v) return def;
  if (!v->is_number_integer()) throw bad_request(std::string("'") + key + "' must be an integer", key);
  int64_t x;
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(hi)) throw bad_request(std::string("'") + key + "' is too large", key);
    x = static_cast<int64_t>(u);
  } else {
    x = v->get<int64_t>();
  }
  if (x < lo || x > hi) throw bad_request(std::string("'") + key + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi), key);
  return x;
}

bool get_bool(const Json& body, const char* key, bool def) {
  const Json* v = field(body, key);
  if (!v) return def;
  if (!v->is_boolean()) throw bad_request(std::string("'") + key + "' must be a boolean", key);
  return v->get<bool>();
}

std::string get_string(const Json& body, const char* key, const std::string& def, const std::string& param) {
  const Json* v = field(body, key);
  if (!v) return def;
  if (!v->is_string()) throw bad_request(std::string("'") + key + "' must be a string", param.empty() ? key : param);
  return v->get<std::string>();
}

}  // namespace dsv4::server
