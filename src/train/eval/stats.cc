#include "train/eval/stats.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "base/error.h"

namespace dsv4::eval {

Interval wilson_interval(int64_t correct, int64_t n, double z) {
  if (n < 0 || correct < 0 || correct > n)
    throw Error("wilson_interval: need 0 <= correct <= n, got correct " + std::to_string(correct) + ", n " + std::to_string(n));
  if (n == 0) return {0.0, 1.0};
  const double nn = static_cast<double>(n);
  const double p = static_cast<double>(correct) / nn;
  const double z2 = z * z;
  const double denom = 1.0 + z2 / nn;
  const double centre = (p + z2 / (2.0 * nn)) / denom;
  const double half = z / denom * std::sqrt(p * (1.0 - p) / nn + z2 / (4.0 * nn * nn));
  Interval r{std::max(0.0, centre - half), std::min(1.0, centre + half)};
  // Exact bounds at the ends (the formula gives them up to rounding).
  if (correct == 0) r.lo = 0.0;
  if (correct == n) r.hi = 1.0;
  return r;
}

}  // namespace dsv4::eval
