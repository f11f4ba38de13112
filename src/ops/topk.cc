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
  thread_local std::vector<int64_t> idx;
  idx.resize(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), int64_t{0});
  std::partial_sort(idx.begin(), idx.begin() + m, idx.end(), before);
  std::copy(idx.begin(), idx.begin() + m, out);
  return m;
}

}  // namespace dsv4
