// json_py must reproduce CPython 3.11's json.dumps(ensure_ascii=False) / json.loads. The
// expected strings below are what CPython prints for the same inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "text/json_py.h"

namespace dsv4 {
namespace {

using json_py::dumps;
using json_py::float_repr;
using json_py::Json;
using json_py::loads;

std::string rt(std::string_view s) { return dumps(loads(s)); }

TEST(JsonPyFloat, ReprMatchesPython) {
  EXPECT_EQ(float_repr(1e5), "100000.0");
  EXPECT_EQ(float_repr(2.5), "2.5");
  EXPECT_EQ(float_repr(1e-7), "1e-07");
  EXPECT_EQ(float_repr(1e16), "1e+16");
  EXPECT_EQ(float_repr(1e15), "1000000000000000.0");
  EXPECT_EQ(float_repr(-0.0), "-0.0");
  EXPECT_EQ(float_repr(0.0), "0.0");
  EXPECT_EQ(float_repr(0.1), "0.1");
  EXPECT_EQ(float_repr(0.0001), "0.0001");
  EXPECT_EQ(float_repr(0.00001), "1e-05");
  EXPECT_EQ(float_repr(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(float_repr(1.5e300), "1.5e+300");
  EXPECT_EQ(float_repr(5e-324), "5e-324");
  EXPECT_EQ(float_repr(std::numeric_limits<double>::max()), "1.7976931348623157e+308");
  EXPECT_EQ(float_repr(123456789.123), "123456789.123");
  EXPECT_EQ(float_repr(9007199254740993.0), "9007199254740992.0");
  EXPECT_EQ(float_repr(-1.25e-10), "-1.25e-10");
  EXPECT_EQ(float_repr(1234567890123456.7), "1234567890123456.8");
  EXPECT_EQ(float_repr(12345678901234567.0), "1.2345678901234568e+16");
}

TEST(JsonPyNumbers, LoadsThenDumps) {
  EXPECT_EQ(rt("[1e5, 2.50, 1E-7, 1e16, -0.0, 0.10, 100, -0]"), "[100000.0, 2.5, 1e-07, 1e+16, -0.0, 0.1, 100, 0]");
  // Big integers keep every digit (Python ints are arbitrary precision).
  EXPECT_EQ(rt("[12345678901234567890123, -98765432109876543210, 18446744073709551615, 18446744073709551616, "
               "-9223372036854775808, -9223372036854775809]"),
            "[12345678901234567890123, -98765432109876543210, 18446744073709551615, 18446744073709551616, "
            "-9223372036854775808, -9223372036854775809]");
  EXPECT_EQ(rt("[NaN, Infinity, -Infinity, 1e400, -1e400, 1e-400]"), "[NaN, Infinity, -Infinity, Infinity, -Infinity, 0.0]");
  EXPECT_EQ(rt("[true, false, null]"), "[true, false, null]");
  // CPython 3.11 refuses int strings over 4300 digits.
  EXPECT_NO_THROW(loads(std::string(4300, '7')));
  EXPECT_THROW(loads(std::string(4301, '7')), json_py::ParseError);
}

TEST(JsonPyStrings, EscapesLikePython) {
  Json s = std::string("\"\\\n\r\t\b\f\x01\x1f\x7f é 😀 \u2028\u2029 /");
  EXPECT_EQ(dumps(s), "\"\\\"\\\\\\n\\r\\t\\b\\f\\u0001\\u001f\x7f é 😀 \u2028\u2029 /\"");
  EXPECT_EQ(rt(R"("\ud83d\ude00 \u00e9 \/ \u0000")"), "\"😀 é / \\u0000\"");
  EXPECT_EQ(dumps(Json("")), "\"\"");
}

TEST(JsonPyObjects, KeyOrderSeparatorsAndDuplicates) {
  EXPECT_EQ(rt(R"({"z": 1, "a": {"y": [], "b": {}}, "m": [1, [2, 3]]})"),
            R"({"z": 1, "a": {"y": [], "b": {}}, "m": [1, [2, 3]]})");
  EXPECT_EQ(rt(R"({"z":1,"a":2})"), R"({"z": 1, "a": 2})");
  // A Python dict keeps the first position of a repeated key and its last value.
  EXPECT_EQ(rt(R"({"a": 1, "b": 2, "a": 3})"), R"({"a": 3, "b": 2})");
  EXPECT_EQ(rt(" \t\r\n[ 1 , 2 ]\n "), "[1, 2]");
}

TEST(JsonPyErrors, RejectsWhatPythonRejects) {
  for (const char* bad : {"", " ", "01", "[1,]", "{'a': 1}", "\"\\x\"", "\"a\nb\"", "1.", ".5", "+1", "[1] 2",
                          "{\"a\" 1}", "nul", "\"abc", "[", "{\"a\": 1,}", "-", "1e", "tru", "\xEF\xBB\xBF{}",
                          "\"\xff\"", "\"\xC0\xAF\"", "\"\xED\xA0\x80\"", "infinity", "nan"}) {
    EXPECT_THROW(loads(bad), json_py::ParseError) << "input: " << bad;
  }
  // Deliberate difference: Python accepts a lone surrogate escape, but the result could not
  // be encoded as UTF-8 in a prompt, so it is rejected here.
  EXPECT_THROW(loads(R"("\ud800")"), json_py::ParseError);
  // Deep nesting is an error, not a stack overflow.
  EXPECT_THROW(loads(std::string(100000, '[')), json_py::ParseError);
}

TEST(JsonPyHelpers, TruthinessAndStr) {
  for (const char* f : {"null", "false", "0", "0.0", "\"\"", "[]", "{}"}) EXPECT_FALSE(json_py::truthy(loads(f))) << f;
  for (const char* t : {"true", "1", "-0.5", "\"a\"", "[0]", "{\"a\": 0}", "NaN", "123456789012345678901234567890"})
    EXPECT_TRUE(json_py::truthy(loads(t))) << t;
  EXPECT_EQ(json_py::py_str(loads("null"), "x"), "None");
  EXPECT_EQ(json_py::py_str(loads("true"), "x"), "True");
  EXPECT_EQ(json_py::py_str(loads("1e5"), "x"), "100000.0");
  EXPECT_EQ(json_py::py_str(loads("\"s\""), "x"), "s");
  EXPECT_THROW(json_py::py_str(loads("[1]"), "x"), Error);
  EXPECT_EQ(json_py::utf8_error("ok é"), "");
  EXPECT_EQ(json_py::utf8_error("ab\xff"), "invalid UTF-8 at byte 2");
}

}  // namespace
}  // namespace dsv4
