// Statistics of `dsv4 eval` reports: the 95% Wilson score interval of an accuracy.
#pragma once
#include <cstdint>

namespace dsv4::eval {

struct Interval {
  double lo = 0.0;
  double hi = 0.0;
};

// z of a two-sided 95% normal interval.
inline constexpr double kZ95 = 1.959963984540054;

// Wilson score interval of `correct` successes in `n` trials (n = 0: [0, 1]).
// Throws Error for correct < 0, n < 0 or correct > n.
Interval wilson_interval(int64_t correct, int64_t n, double z = kZ95);

}  // namespace dsv4::eval
