// Constrained decoding: the JSON automaton accepts exactly the texts it should, a token mask
// only lets through tokens that keep the output valid, and random walks over the mask always
// produce text that parses (the property the server relies on).
#include <gtest/gtest.h>

#include <random>

#include "engine/constraint.h"

namespace dsv4 {
namespace {

using json_py::Json;

// A toy vocabulary: single bytes of JSON plus a few multi-byte pieces; id 0 is EOS (special).
// Like a real byte-level vocabulary it can spell every byte the automaton may need, so a mask
// is never empty.
std::shared_ptr<const TokenTable> toy_table() {
  auto t = std::make_shared<TokenTable>();
  std::vector<std::string> v = {"<eos>", "{", "}", "[", "]", ",", ":", "\"", "a", "b", "1", "0", "-", ".", "e",
                                "true", "false", "null", "\"city\":", "{\"", "\"}", "12", " ", "\\", "n", "x\"", ",\"days\":",
                                // every byte a literal needs, as a byte-level BPE vocabulary has
                                "u", "l", "t", "r", "f", "s", "c", "i", "y"};
  t->bytes = v;
  t->special.assign(v.size(), 0);
  t->special[0] = 1;
  t->eos = 0;
  return t;
}

TEST(JsonConstraint, AnyObjectAcceptsValidJson) {
  JsonConstraint c(toy_table(), Json());
  for (const char* ok : {"{}", "{\"a\":1}", "{\"a\":[1,2,{\"b\":null}],\"b\":\"x\\n\"}", "{\"a\":-0.5e-3}", "{\"a\":true}"})
    EXPECT_TRUE(c.accepts_text(ok)) << ok;
  for (const char* bad : {"", "[]", "1", "{", "{\"a\"}", "{\"a\":01}", "{\"a\":1,}", "{ }", "{\"a\":tru}", "{\"a\":\"\\x\"}", "{}}"})
    EXPECT_FALSE(c.accepts_text(bad)) << bad;
}

TEST(JsonConstraint, SchemaFixesKeysAndTypes) {
  Json schema = json_py::loads(R"({"type":"object","properties":{"city":{"type":"string","maxLength":3},"days":{"type":"integer"},
                                   "ok":{"type":"boolean"},"tags":{"type":"array","items":{"enum":["a","b"]},"maxItems":2}}})");
  JsonConstraint c(toy_table(), schema);
  EXPECT_TRUE(c.accepts_text(R"({"city":"abc","days":-12,"ok":false,"tags":["a","b"]})"));
  EXPECT_TRUE(c.accepts_text(R"({"city":"","days":0,"ok":true,"tags":[]})"));
  EXPECT_FALSE(c.accepts_text(R"({"city":"abcd","days":1,"ok":true,"tags":[]})"));   // maxLength
  EXPECT_FALSE(c.accepts_text(R"({"city":"a","days":1.5,"ok":true,"tags":[]})"));    // integer
  EXPECT_FALSE(c.accepts_text(R"({"days":1,"city":"a","ok":true,"tags":[]})"));      // key order / names
  EXPECT_FALSE(c.accepts_text(R"({"city":"a","days":1,"ok":true,"tags":["c"]})"));   // enum
  EXPECT_FALSE(c.accepts_text(R"({"city":"a","days":1,"ok":true,"tags":["a","a","a"]})"));  // maxItems
  EXPECT_FALSE(c.accepts_text(R"({"city":"a","days":1,"ok":true})"));                // missing property
}

// Strings stay valid UTF-8 whatever byte tokens a weak model picks (RFC 3629), and a character
// is only started when all of its bytes fit in maxLength.
TEST(JsonConstraint, StringsAreValidUtf8) {
  JsonConstraint c(toy_table(), json_py::loads(R"({"type":"object","properties":{"s":{"type":"string","maxLength":5}}})"));
  EXPECT_TRUE(c.accepts_text("{\"s\":\"\xC3\xA9t\xC3\xA9\"}"));        // "été": 5 bytes
  EXPECT_FALSE(c.accepts_text("{\"s\":\"\xC3\xA9t\xC3\xA9t\"}"));
  EXPECT_TRUE(c.accepts_text("{\"s\":\"\xF0\x9F\x98\x80\"}"));         // U+1F600, 4 bytes
  EXPECT_FALSE(c.accepts_text("{\"s\":\"ab\xF0\x9F\x98\x80\"}"));      // would need 6
  for (const char* bad : {"{\"s\":\"\xC3\"}", "{\"s\":\"\xC3t\"}", "{\"s\":\"\x80\"}", "{\"s\":\"\xC0\xAF\"}",
                          "{\"s\":\"\xED\xA0\x80\"}", "{\"s\":\"\xF4\x90\x80\x80\"}", "{\"s\":\"\xE0\x80\xAF\"}", "{\"s\":\"\xFF\"}"})
    EXPECT_FALSE(c.accepts_text(bad)) << bad;
  uint32_t u = 0;
  for (unsigned char ch : std::string("\xE2\x82")) EXPECT_TRUE(utf8_step(u, ch));
  EXPECT_EQ(utf8_pending(u), 1);
  EXPECT_TRUE(utf8_step(u, 0xAC));
  EXPECT_EQ(u, 0u);
}

TEST(JsonConstraint, MaskAndAccept) {
  auto t = toy_table();
  JsonConstraint c(t, Json());
  std::vector<float> logits(t->bytes.size(), 0.0f);
  EXPECT_GT(c.mask(logits), 0u);
  EXPECT_TRUE(c.allows(1));    // {
  EXPECT_TRUE(c.allows(19));   // {"
  EXPECT_FALSE(c.allows(0));   // EOS before anything
  EXPECT_FALSE(c.allows(3));   // [ at the root of json_object
  EXPECT_FALSE(c.allows(22));  // whitespace
  c.accept(1);
  c.accept(2);
  EXPECT_TRUE(c.done());
  for (size_t i = 1; i < t->bytes.size(); ++i) EXPECT_FALSE(c.allows(static_cast<int32_t>(i))) << t->bytes[i];
  EXPECT_TRUE(c.allows(0));
  EXPECT_THROW(c.accept(1), Error);
}

// Random walks: whatever the sampler picks among allowed tokens, the result parses as JSON and
// satisfies the schema, and the walk ends (EOS) within a bounded number of tokens.
TEST(JsonConstraint, RandomWalksAlwaysParse) {
  auto t = toy_table();
  Json schema = json_py::loads(R"({"type":"object","properties":{"city":{"type":"string"},"n":{"type":"number"},
                                   "any":{},"list":{"type":"array","items":{"type":"integer"}}}})");
  std::mt19937 rng(1);
  for (int walk = 0; walk < 300; ++walk) {
    JsonConstraint c(t, walk % 2 ? schema : Json());
    std::string text;
    bool ended = false;
    for (int step = 0; step < 5000 && !ended; ++step) {
      std::vector<int32_t> allowed;
      for (int32_t id = 0; id < static_cast<int32_t>(t->bytes.size()); ++id)
        if (c.allows(id)) allowed.push_back(id);
      ASSERT_FALSE(allowed.empty()) << text;
      // Prefer EOS sometimes so walks end; otherwise uniform.
      int32_t pick = allowed[rng() % allowed.size()];
      if (c.allows(0) && rng() % 3 == 0) pick = 0;
      c.accept(pick);
      if (pick == 0) ended = true;
      else text += t->bytes[static_cast<size_t>(pick)];
    }
    ASSERT_TRUE(ended) << text;
    Json parsed;
    ASSERT_NO_THROW(parsed = json_py::loads(text)) << text;
    ASSERT_TRUE(parsed.is_object()) << text;
    if (walk % 2) {
      EXPECT_TRUE(parsed["city"].is_string() && parsed["n"].is_number() && parsed["list"].is_array()) << text;
    }
  }
}

TEST(ChoiceConstraint, ForcesOneOfTheOptions) {
  // Two options sharing a first token; a name that is a prefix of another ends at its own
  // closing token.
  ChoiceConstraint c({{5, 7, 9, 1}, {5, 8, 1}, {5, 7, 9, 4, 1}});
  EXPECT_TRUE(c.allows(5));
  EXPECT_FALSE(c.allows(7));
  c.accept(5);
  EXPECT_TRUE(c.allows(7));
  EXPECT_TRUE(c.allows(8));
  EXPECT_FALSE(c.allows(9));
  c.accept(7);  // options 0 and 2 remain
  EXPECT_FALSE(c.allows(8));
  c.accept(9);
  EXPECT_TRUE(c.allows(1));
  EXPECT_TRUE(c.allows(4));
  EXPECT_THROW(c.accept(3), Error);
  c.accept(1);
  EXPECT_TRUE(c.done());
  EXPECT_EQ(c.chosen(), 0);
  EXPECT_FALSE(c.allows(1));
  EXPECT_THROW(ChoiceConstraint({}), Error);
}

TEST(JsonConstraint, BadSchemasAreErrors) {
  auto t = toy_table();
  EXPECT_THROW(JsonConstraint(t, Json(5)), Error);
  EXPECT_THROW(JsonConstraint(t, json_py::loads(R"({"enum": []})")), Error);
  Json deep = Json::object();
  for (int i = 0; i < 20; ++i) deep = Json::object({{"type", "array"}, {"items", deep}});
  EXPECT_THROW(JsonConstraint(t, deep), Error);
}

}  // namespace
}  // namespace dsv4
