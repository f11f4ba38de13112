// JSON with Python's semantics, so prompts match the official encoder byte for byte.
//
// The reference encoder (encoding_dsv4.py) writes every JSON fragment of a prompt with
// `json.dumps(obj, ensure_ascii=False)` and re-parses tool-call arguments with `json.loads`.
// Prompt bytes therefore depend on Python's choices: ", " and ": " separators, key order as
// inserted, float repr (shortest round trip: 1e5 -> 100000.0, 1e16 -> 1e+16, 1e-7 -> 1e-07),
// arbitrary-precision integers, NaN/Infinity literals, and duplicate keys resolved as a
// dict does (first position, last value).
//
// Values are nlohmann::ordered_json. Two Python values have no native slot there:
//  * integers beyond int64/uint64 are stored as a `binary` value with subtype
//    kBigIntSubtype holding the decimal digit text (JSON text never produces binary
//    values, so the slot is free);
//  * NaN and +-Infinity are ordinary doubles.
// Use loads() to build values from text; dumps() understands both encodings.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace dsv4::json_py {

using Json = nlohmann::ordered_json;

// Subtype tag of a binary value that carries a big integer's decimal text ("-123...").
inline constexpr std::uint64_t kBigIntSubtype = 0x50;  // 'P' for Python int

// Raised by loads() on malformed input; the message names the byte offset like
// Python's JSONDecodeError does ("Expecting value: char 12").
class ParseError : public Error {
 public:
  using Error::Error;
};

// Python `json.loads(text)` for a str. Also rejects what a Python str can't hold
// after decoding stdin: invalid UTF-8. Lone \ud800-style surrogate escapes are
// rejected too, because the resulting prompt could not be encoded as UTF-8.
Json loads(std::string_view text);

// Python `json.dumps(value, ensure_ascii=False)`.
std::string dumps(const Json& value);

// Python `repr(float)` (also what json.dumps writes for finite floats).
std::string float_repr(double v);

// Appends `s` as a JSON string literal (with quotes), escaped like json.dumps.
void append_quoted(std::string& out, std::string_view s);

// A big integer value from its decimal text (validated: optional '-', digits).
Json make_bigint(std::string_view digits);
bool is_bigint(const Json& v);

// Python truthiness of a JSON value: null, false, 0, 0.0, "", [], {} are false.
bool truthy(const Json& v);

// Python `str(v)` for scalars (None, True, False, ints, float repr, str as-is).
// Lists and objects would need Python's repr of dicts; the encoder does not emulate
// that and raises Error (callers name the field).
std::string py_str(const Json& v, std::string_view what);

// Python type name of a JSON value ("str", "int", "list", "dict", "NoneType", ...),
// used to phrase errors the way the reference would.
std::string py_type_name(const Json& v);

// Returns an empty string if `s` is valid UTF-8, else a description of the first
// bad byte ("invalid UTF-8 at byte 17").
std::string utf8_error(std::string_view s);

}  // namespace dsv4::json_py
