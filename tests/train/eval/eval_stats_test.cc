// Wilson intervals against published values and the --modes list parser.
#include <gtest/gtest.h>

#include "base/error.h"
#include "train/eval/modes.h"
#include "train/eval/stats.h"

namespace dsv4::eval {
namespace {

// Newcombe, "Two-sided confidence intervals for the single proportion: comparison of seven
// methods", Statistics in Medicine 17 (1998), Table II, method 3 (Wilson score, no
// continuity correction), to 4 decimals.
TEST(EvalStats, WilsonMatchesNewcombeTable) {
  struct Case {
    int64_t r, n;
    double lo, hi;
  };
  for (const Case& c : {Case{81, 263, 0.2553, 0.3662}, Case{15, 148, 0.0624, 0.1605}, Case{0, 20, 0.0, 0.1611},
                        Case{1, 29, 0.0061, 0.1718}}) {
    const Interval ci = wilson_interval(c.r, c.n);
    EXPECT_NEAR(ci.lo, c.lo, 0.5e-4) << c.r << "/" << c.n;
    EXPECT_NEAR(ci.hi, c.hi, 0.5e-4) << c.r << "/" << c.n;
  }
}

TEST(EvalStats, WilsonEdgesAndSymmetry) {
  EXPECT_EQ(wilson_interval(0, 0).lo, 0.0);
  EXPECT_EQ(wilson_interval(0, 0).hi, 1.0);
  EXPECT_EQ(wilson_interval(20, 20).hi, 1.0);
  const Interval a = wilson_interval(3, 17), b = wilson_interval(14, 17);
  EXPECT_NEAR(a.lo, 1.0 - b.hi, 1e-12);
  EXPECT_NEAR(a.hi, 1.0 - b.lo, 1e-12);
  EXPECT_THROW(wilson_interval(5, 4), Error);
  EXPECT_THROW(wilson_interval(-1, 4), Error);
}

TEST(EvalModes, ParsesListsAndRejectsBadNames) {
  const auto m = parse_mode_list("think-max,non-think");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0], tasks::Mode::ThinkMax);
  EXPECT_EQ(m[1], tasks::Mode::NonThink);
  EXPECT_STREQ(mode_key(tasks::Mode::ThinkHigh), "think-high");
  EXPECT_STREQ(reasoning_effort_of(tasks::Mode::NonThink), "none");
  EXPECT_STREQ(reasoning_effort_of(tasks::Mode::ThinkMax), "max");
  EXPECT_THROW(parse_mode_list("think-medium"), Error);
  EXPECT_THROW(parse_mode_list("non-think,chat"), Error);
  EXPECT_THROW(parse_mode_list(""), Error);
}

}  // namespace
}  // namespace dsv4::eval
