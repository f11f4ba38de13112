#include "text/json_py.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

namespace dsv4::json_py {

namespace {

// Python's int() refuses to convert more than 4300 digits (sys.int_info.default_max_str_digits,
// CPython >= 3.11); json.loads then raises ValueError. The reference ran on 3.11.
constexpr size_t kMaxIntDigits = 4300;
// Nesting guard: CPython's json raises RecursionError near its recursion limit (1000).
constexpr int kMaxDepth = 1000;

// Decodes one UTF-8 sequence at s[i]; returns its length or 0 if invalid.
size_t utf8_len(std::string_view s, size_t i, uint32_t* cp_out) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    if (cp_out) *cp_out = c;
    return 1;
  }
  size_t n;
  uint32_t cp, min;
  if ((c & 0xE0) == 0xC0) {
    n = 2, cp = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3, cp = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    unsigned char d = static_cast<unsigned char>(s[i + k]);
    if ((d & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (d & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  if (cp_out) *cp_out = cp;
  return n;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  Json parse_document() {
    // Python: json.loads refuses a leading BOM on str input.
    if (s_.substr(0, 3) == "\xEF\xBB\xBF") fail("Unexpected UTF-8 BOM (decode using utf-8-sig)");
    skip_ws();
    Json v = parse_value(0);
    skip_ws();
    if (i_ != s_.size()) fail("Extra data");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw ParseError("invalid JSON: " + what + " at byte " + std::to_string(i_));
  }

  void skip_ws() {
    // JSON (and Python's json) whitespace only: space, \t, \n, \r.
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }

  bool starts(std::string_view lit) const { return s_.substr(i_, lit.size()) == lit; }

  Json parse_value(int depth) {
    if (depth > kMaxDepth) fail("nesting too deep");
    if (i_ >= s_.size()) fail("Expecting value");
    char c = s_[i_];
    switch (c) {
      case '{':
        return parse_object(depth);
      case '[':
        return parse_array(depth);
      case '"': {
        std::string str;
        parse_string(str);
        return Json(std::move(str));
      }
      case 'n':
        if (starts("null")) return i_ += 4, Json(nullptr);
        break;
      case 't':
        if (starts("true")) return i_ += 4, Json(true);
        break;
      case 'f':
        if (starts("false")) return i_ += 5, Json(false);
        break;
      // Python's json accepts these non-standard literals (allow_nan semantics).
      case 'N':
        if (starts("NaN")) return i_ += 3, Json(std::numeric_limits<double>::quiet_NaN());
        break;
      case 'I':
        if (starts("Infinity")) return i_ += 8, Json(std::numeric_limits<double>::infinity());
        break;
      case '-':
        if (starts("-Infinity")) return i_ += 9, Json(-std::numeric_limits<double>::infinity());
        return parse_number();
      default:
        if (c >= '0' && c <= '9') return parse_number();
    }
    fail("Expecting value");
  }

  Json parse_number() {
    size_t start = i_;
    if (s_[i_] == '-') ++i_;
    if (i_ >= s_.size() || !(s_[i_] >= '0' && s_[i_] <= '9')) {
      i_ = start;
      fail("Expecting value");
    }
    if (s_[i_] == '0') {
      ++i_;
    } else {
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
    }
    bool is_float = false;
    // Python's number regex: frac and exp are only taken when complete; otherwise
    // the number ends there and the leftover ('.' or 'e') is "Extra data".
    if (i_ + 1 < s_.size() && s_[i_] == '.' && s_[i_ + 1] >= '0' && s_[i_ + 1] <= '9') {
      i_ += 1;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
      is_float = true;
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      size_t j = i_ + 1;
      if (j < s_.size() && (s_[j] == '+' || s_[j] == '-')) ++j;
      if (j < s_.size() && s_[j] >= '0' && s_[j] <= '9') {
        while (j < s_.size() && s_[j] >= '0' && s_[j] <= '9') ++j;
        i_ = j;
        is_float = true;
      }
    }
    std::string text(s_.substr(start, i_ - start));
    if (is_float) {
      // strtod is correctly rounded and, like Python's float(), overflows to inf and
      // underflows to 0 instead of failing.
      errno = 0;
      double d = std::strtod(text.c_str(), nullptr);
      return Json(d);
    }
    if (text[0] == '-') {
      int64_t v;
      auto r = std::from_chars(text.data(), text.data() + text.size(), v);
      if (r.ec == std::errc() && r.ptr == text.data() + text.size()) return Json(v);
    } else {
      uint64_t v;
      auto r = std::from_chars(text.data(), text.data() + text.size(), v);
      if (r.ec == std::errc() && r.ptr == text.data() + text.size()) {
        if (v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return Json(static_cast<int64_t>(v));
        return Json(v);
      }
    }
    size_t ndigits = text.size() - (text[0] == '-' ? 1 : 0);
    if (ndigits > kMaxIntDigits) {
      i_ = start;
      fail("integer has more than 4300 digits (Python's int limit)");
    }
    return make_bigint(text);
  }

  uint32_t parse_hex4() {
    if (i_ + 4 > s_.size()) fail("Invalid \\uXXXX escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      char c = s_[i_ + k];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= c - '0';
      else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
      else fail("Invalid \\uXXXX escape");
    }
    i_ += 4;
    return v;
  }

  void parse_string(std::string& out) {
    ++i_;  // opening quote
    while (true) {
      if (i_ >= s_.size()) fail("Unterminated string");
      unsigned char c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        ++i_;
        return;
      }
      if (c == '\\') {
        ++i_;
        if (i_ >= s_.size()) fail("Unterminated string");
        char e = s_[i_++];
        switch (e) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u': {
            uint32_t cp = parse_hex4();
            if (cp >= 0xD800 && cp <= 0xDBFF && starts("\\u")) {
              size_t save = i_;
              i_ += 2;
              uint32_t lo = parse_hex4();
              if (lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
              } else {
                i_ = save;  // Python keeps the high surrogate alone; we reject below
              }
            }
            if (cp >= 0xD800 && cp <= 0xDFFF) fail("lone surrogate \\u escape (not representable in UTF-8)");
            append_utf8(out, cp);
            break;
          }
          default:
            i_ -= 2;
            fail("Invalid \\escape");
        }
        continue;
      }
      if (c < 0x20) fail("Invalid control character in string");
      uint32_t cp;
      size_t n = utf8_len(s_, i_, &cp);
      if (n == 0) fail("invalid UTF-8");
      out.append(s_.substr(i_, n));
      i_ += n;
    }
  }

  Json parse_object(int depth) {
    ++i_;
    Json obj = Json::object();
    skip_ws();
    if (i_ < s_.size() && s_[i_] == '}') {
      ++i_;
      return obj;
    }
    while (true) {
      if (i_ >= s_.size() || s_[i_] != '"') fail("Expecting property name enclosed in double quotes");
      std::string key;
      parse_string(key);
      skip_ws();
      if (i_ >= s_.size() || s_[i_] != ':') fail("Expecting ':' delimiter");
      ++i_;
      skip_ws();
      // Python dict semantics for duplicate keys: the first position, the last value.
      obj[key] = parse_value(depth + 1);
      skip_ws();
      if (i_ < s_.size() && s_[i_] == ',') {
        ++i_;
        skip_ws();
        continue;
      }
      if (i_ < s_.size() && s_[i_] == '}') {
        ++i_;
        return obj;
      }
      fail("Expecting ',' delimiter");
    }
  }

  Json parse_array(int depth) {
    ++i_;
    Json arr = Json::array();
    skip_ws();
    if (i_ < s_.size() && s_[i_] == ']') {
      ++i_;
      return arr;
    }
    while (true) {
      arr.push_back(parse_value(depth + 1));
      skip_ws();
      if (i_ < s_.size() && s_[i_] == ',') {
        ++i_;
        skip_ws();
        continue;
      }
      if (i_ < s_.size() && s_[i_] == ']') {
        ++i_;
        return arr;
      }
      fail("Expecting ',' delimiter");
    }
  }

  std::string_view s_;
  size_t i_ = 0;
};

void dump_into(std::string& out, const Json& v, int depth) {
  if (depth > kMaxDepth) throw Error("JSON value nested too deeply to serialise");
  switch (v.type()) {
    case Json::value_t::null:
      out += "null";
      return;
    case Json::value_t::boolean:
      out += v.get<bool>() ? "true" : "false";
      return;
    case Json::value_t::number_integer:
      out += std::to_string(v.get<int64_t>());
      return;
    case Json::value_t::number_unsigned:
      out += std::to_string(v.get<uint64_t>());
      return;
    case Json::value_t::number_float: {
      double d = v.get<double>();
      if (std::isnan(d)) out += "NaN";
      else if (std::isinf(d)) out += d > 0 ? "Infinity" : "-Infinity";
      else out += float_repr(d);
      return;
    }
    case Json::value_t::string:
      append_quoted(out, v.get_ref<const std::string&>());
      return;
    case Json::value_t::binary: {
      const auto& b = v.get_binary();
      if (!b.has_subtype() || b.subtype() != kBigIntSubtype) throw Error("binary JSON values cannot be serialised");
      out.append(b.begin(), b.end());
      return;
    }
    case Json::value_t::array: {
      out += '[';
      bool first = true;
      for (const auto& e : v) {
        if (!first) out += ", ";
        first = false;
        dump_into(out, e, depth + 1);
      }
      out += ']';
      return;
    }
    case Json::value_t::object: {
      out += '{';
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (!first) out += ", ";
        first = false;
        append_quoted(out, it.key());
        out += ": ";
        dump_into(out, it.value(), depth + 1);
      }
      out += '}';
      return;
    }
    case Json::value_t::discarded:
      throw Error("discarded JSON value cannot be serialised");
  }
}

}  // namespace

Json loads(std::string_view text) { return Parser(text).parse_document(); }

std::string dumps(const Json& value) {
  std::string out;
  dump_into(out, value, 0);
  return out;
}

std::string float_repr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  // Shortest round-trip digits come from to_chars in scientific form ("d.ddde+XX");
  // then lay them out as CPython's repr does: exponent form when the decimal point
  // position is < -4 or > 16 digits, fixed form (always with a fractional part) otherwise.
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string sci(buf, r.ptr);
  bool neg = false;
  size_t p = 0;
  if (sci[0] == '-') neg = true, p = 1;
  size_t epos = sci.find('e');
  std::string mant = sci.substr(p, epos - p);
  int exp10 = std::atoi(sci.c_str() + epos + 1);
  std::string digits;
  for (char c : mant)
    if (c != '.') digits += c;
  // Strip trailing zeros (to_chars gives shortest, but "0e+00" style for zero).
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  int decpt = exp10 + 1;  // value = 0.DIGITS * 10^decpt
  std::string out = neg ? "-" : "";
  if (digits == "0") return out + "0.0";
  int nd = static_cast<int>(digits.size());
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0.";
      out.append(static_cast<size_t>(-decpt), '0');
      out += digits;
    } else if (decpt >= nd) {
      out += digits;
      out.append(static_cast<size_t>(decpt - nd), '0');
      out += ".0";
    } else {
      out += digits.substr(0, decpt);
      out += '.';
      out += digits.substr(decpt);
    }
    return out;
  }
  out += digits[0];
  if (nd > 1) {
    out += '.';
    out += digits.substr(1);
  }
  int e = decpt - 1;
  char eb[16];
  std::snprintf(eb, sizeof eb, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
  out += eb;
  return out;
}

void append_quoted(std::string& out, std::string_view s) {
  out += '"';
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          // Python writes '\\u{0:04x}': lowercase hex.
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", c);
          out += b;
        } else {
          out += ch;  // ensure_ascii=False: DEL, non-ASCII, U+2028/2029 stay raw
        }
    }
  }
  out += '"';
}

Json make_bigint(std::string_view digits) {
  size_t k = 0;
  if (k < digits.size() && digits[k] == '-') ++k;
  if (k == digits.size()) throw Error("big integer without digits");
  for (size_t i = k; i < digits.size(); ++i)
    if (digits[i] < '0' || digits[i] > '9') throw Error("big integer with a non-digit");
  // Json::binary(container, subtype): passing a binary_t would slice off the subtype.
  return Json::binary(std::vector<std::uint8_t>(digits.begin(), digits.end()), kBigIntSubtype);
}

bool is_bigint(const Json& v) {
  return v.is_binary() && v.get_binary().has_subtype() && v.get_binary().subtype() == kBigIntSubtype;
}

bool truthy(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null: return false;
    case Json::value_t::boolean: return v.get<bool>();
    case Json::value_t::number_integer: return v.get<int64_t>() != 0;
    case Json::value_t::number_unsigned: return v.get<uint64_t>() != 0;
    case Json::value_t::number_float: return v.get<double>() != 0.0;  // NaN is truthy, as in Python
    case Json::value_t::string: return !v.get_ref<const std::string&>().empty();
    case Json::value_t::array:
    case Json::value_t::object: return !v.empty();
    case Json::value_t::binary: return true;  // big integers are never 0
    default: return false;
  }
}

std::string py_str(const Json& v, std::string_view what) {
  switch (v.type()) {
    case Json::value_t::null: return "None";
    case Json::value_t::boolean: return v.get<bool>() ? "True" : "False";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::binary: return dumps(v);
    case Json::value_t::number_float: return float_repr(v.get<double>());
    case Json::value_t::string: return v.get<std::string>();
    default:
      throw Error(std::string(what) + " must be a string, not a " + py_type_name(v) +
                  " (the reference would paste Python's repr of it; flatten content parts to text first)");
  }
}

std::string py_type_name(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null: return "NoneType";
    case Json::value_t::boolean: return "bool";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::binary: return "int";
    case Json::value_t::number_float: return "float";
    case Json::value_t::string: return "str";
    case Json::value_t::array: return "list";
    case Json::value_t::object: return "dict";
    default: return "object";
  }
}

std::string utf8_error(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_len(s, i, nullptr);
    if (n == 0) return "invalid UTF-8 at byte " + std::to_string(i);
    i += n;
  }
  return {};
}

}  // namespace dsv4::json_py
