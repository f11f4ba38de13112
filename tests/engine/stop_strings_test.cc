// StopStringMatcher: stops spanning deltas, overlapping prefixes, several stop strings, held-back
// text released on a failed match, and (fuzz) results independent of how the text is split.
#include "engine/stop_strings.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"

using namespace dsv4;

namespace {

struct Outcome {
  std::string text;  // everything emitted (feeds + flush)
  bool stopped = false;
  int index = -1;
};

Outcome run(StopStringMatcher m, const std::vector<std::string>& deltas) {
  Outcome o;
  for (const auto& d : deltas) {
    auto r = m.feed(d);
    o.text += r.emit;
    if (r.stopped) {
      o.stopped = true;
      o.index = r.stop_index;
    }
  }
  o.text += m.flush();
  return o;
}

std::vector<std::string> chars(const std::string& s) {
  std::vector<std::string> v;
  for (char c : s) v.emplace_back(1, c);
  return v;
}

// Reference: scan end positions in order; the first end where some stop string ends wins,
// the longest of those; output is the text before it.
Outcome reference(const std::vector<std::string>& stops, const std::string& text, bool include) {
  for (size_t end = 1; end <= text.size(); ++end) {
    int best = -1;
    size_t best_len = 0;
    for (size_t i = 0; i < stops.size(); ++i) {
      const auto& s = stops[i];
      if (s.empty() || s.size() > end) continue;
      if (text.compare(end - s.size(), s.size(), s) == 0 && s.size() > best_len) {
        best = static_cast<int>(i);
        best_len = s.size();
      }
    }
    if (best >= 0) return {text.substr(0, include ? end : end - best_len), true, best};
  }
  return {text, false, -1};
}

}  // namespace

TEST(StopStrings, StopInsideOneDelta) {
  auto o = run(StopStringMatcher({"END"}), {"hello END world"});
  EXPECT_TRUE(o.stopped);
  EXPECT_EQ(o.index, 0);
  EXPECT_EQ(o.text, "hello ");
}

TEST(StopStrings, StopSpanningSeveralDeltas) {
  StopStringMatcher m({"</answer>"});
  auto r1 = m.feed("The result is 4</");
  EXPECT_EQ(r1.emit, "The result is 4");  // "</" held back
  EXPECT_EQ(m.held(), "</");
  auto r2 = m.feed("ans");
  EXPECT_EQ(r2.emit, "");
  EXPECT_FALSE(r2.stopped);
  auto r3 = m.feed("wer> trailing");
  EXPECT_TRUE(r3.stopped);
  EXPECT_EQ(r3.emit, "");
  EXPECT_TRUE(m.stopped());
  // After the stop nothing more comes out.
  EXPECT_EQ(m.feed("more").emit, "");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopStrings, OverlappingPrefixes) {
  // "abab" first completes at index 1..4 of "aababab".
  for (const auto& deltas : {chars("aababab"), std::vector<std::string>{"aababab"}, std::vector<std::string>{"aa", "bab", "ab"},
                             std::vector<std::string>{"aab", "a", "bab"}}) {
    auto o = run(StopStringMatcher({"abab"}), deltas);
    EXPECT_TRUE(o.stopped);
    EXPECT_EQ(o.text, "a");
  }
  // Self-overlapping stop where the first partial fails but a later start succeeds.
  auto o = run(StopStringMatcher({"aab"}), chars("aaab"));
  EXPECT_TRUE(o.stopped);
  EXPECT_EQ(o.text, "a");
}

TEST(StopStrings, MultipleStopStrings) {
  // The one completing first wins, whatever its position in the list.
  auto o = run(StopStringMatcher({"world", "lo w"}), {"hel", "lo world"});
  EXPECT_TRUE(o.stopped);
  EXPECT_EQ(o.index, 1);
  EXPECT_EQ(o.text, "hel");
  // A short stop completing inside a long partial match.
  auto o2 = run(StopStringMatcher({"abcd", "bc"}), chars("xabcd"));
  EXPECT_EQ(o2.index, 1);
  EXPECT_EQ(o2.text, "xa");
  // Both complete at the same byte: the longer one (earlier start).
  auto o3 = run(StopStringMatcher({"c", "abc"}), {"zab", "c"});
  EXPECT_EQ(o3.index, 1);
  EXPECT_EQ(o3.text, "z");
  // Empty strings are ignored; indices refer to the caller's list.
  auto o4 = run(StopStringMatcher({"", "\n\n"}), {"line\n", "\nnext"});
  EXPECT_EQ(o4.index, 1);
  EXPECT_EQ(o4.text, "line");
}

TEST(StopStrings, HeldBackTextIsReleasedWhenTheMatchFails) {
  StopStringMatcher m({"abc"});
  EXPECT_EQ(m.feed("xxab").emit, "xx");
  EXPECT_EQ(m.feed("x").emit, "abx");
  EXPECT_EQ(m.feed("a").emit, "");
  EXPECT_EQ(m.feed("a").emit, "a");  // "aa": the first a can no longer start "abc"
  EXPECT_EQ(m.held(), "a");
  EXPECT_EQ(m.flush(), "a");  // end of generation: the partial match is ordinary text
  EXPECT_FALSE(m.stopped());
}

TEST(StopStrings, IncludeStopAndNoStops) {
  auto o = run(StopStringMatcher({"###"}, true), {"answer #", "## rest"});
  EXPECT_TRUE(o.stopped);
  EXPECT_EQ(o.text, "answer ###");
  StopStringMatcher none({});
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none.feed("anything").emit, "anything");
  EXPECT_THROW(StopStringMatcher(std::vector<std::string>(StopStringMatcher::kMaxStops + 1, "x")), Error);
}

TEST(StopStrings, MultibyteUtf8) {
  // "。\n" (U+3002 + newline) as a stop; text arrives as whole characters.
  auto o = run(StopStringMatcher({"\xE3\x80\x82\n"}), {"\xE4\xBD\xA0\xE5\xA5\xBD", "\xE3\x80\x82", "\n\xE5\x86\x8D"});
  EXPECT_TRUE(o.stopped);
  EXPECT_EQ(o.text, "\xE4\xBD\xA0\xE5\xA5\xBD");
}

TEST(StopStrings, FuzzMatchesReferenceForAnySplit) {
  uint64_t st = 12345;
  auto rnd = [&](uint64_t n) {
    st = st * 6364136223846793005ull + 1442695040888963407ull;
    return (st >> 33) % n;
  };
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<std::string> stops;
    const int ns = 1 + static_cast<int>(rnd(3));
    for (int i = 0; i < ns; ++i) {
      std::string s;
      const int len = 1 + static_cast<int>(rnd(4));
      for (int k = 0; k < len; ++k) s.push_back("abc"[rnd(3)]);
      stops.push_back(s);
    }
    std::string text;
    const int tl = static_cast<int>(rnd(30));
    for (int k = 0; k < tl; ++k) text.push_back("abcd"[rnd(4)]);
    std::vector<std::string> deltas;
    for (size_t p = 0; p < text.size();) {
      const size_t n = std::min(text.size() - p, static_cast<size_t>(rnd(5)));  // empty deltas too
      deltas.push_back(text.substr(p, n));
      p += n;
    }
    const bool include = rnd(2) == 1;
    const Outcome want = reference(stops, text, include);
    const Outcome got = run(StopStringMatcher(stops, include), deltas);
    ASSERT_EQ(got.stopped, want.stopped) << "text " << text;
    ASSERT_EQ(got.text, want.text) << "text " << text;
    ASSERT_EQ(got.index, want.index) << "text " << text;
  }
}
