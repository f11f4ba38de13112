#include "ops/topk.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace dsv4 {

int64_t topk_indices(const float* scores, int64_t n, int64_t k, int64_t* out) {
  const int64_t m = std::max<int64_t>(0, std::min(k, n));
  if (m == 0) return 0;
  // Strict weak order: higher score first, NaN below everything, equal scores (and NaNs
  // among themselves) by ascending index.
  auto before = [scores](int64_t a, int64_t b) {
    const float sa = scores[a];
    const float sb = scores[b];
    const bool na = std::isnan(sa);
    const bool nb = std::isnan(sb);
    if (na != nb) return nb;
    if (!na && sa != sb) return sa > sb;
    return a < b;
  };
  // Reused scratch that only grows (resizing down and up again would reallocate on every
  // call whose n exceeds the last one, i.e. on most decode steps).
  thread_local std::vector<int64_t> scratch;
  if (scratch.size() < static_cast<size_t>(n)) scratch.resize(std::max(static_cast<size_t>(n), 2 * scratch.size()));
  int64_t* idx = scratch.data();
  std::iota(idx, idx + n, int64_t{0});
  std::partial_sort(idx, idx + m, idx + n, before);
  std::copy(idx, idx + m, out);
  return m;
}

}  // namespace dsv4
