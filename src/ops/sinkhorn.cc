#include "ops/sinkhorn.h"

#include <algorithm>
#include <vector>

#include "ops/math.h"

namespace dsv4 {
namespace {

void normalize_rows(float* m, int64_t n, float eps) {
  for (int64_t j = 0; j < n; ++j) {
    float sum = 0.0f;
    for (int64_t k = 0; k < n; ++k) sum += m[j * n + k];
    const float denom = sum + eps;
    for (int64_t k = 0; k < n; ++k) m[j * n + k] /= denom;
  }
}

void normalize_cols(float* m, int64_t n, float eps) {
  for (int64_t k = 0; k < n; ++k) {
    float sum = 0.0f;
    for (int64_t j = 0; j < n; ++j) sum += m[j * n + k];
    const float denom = sum + eps;
    for (int64_t j = 0; j < n; ++j) m[j * n + k] /= denom;
  }
}

}  // namespace

void sinkhorn_project(float* m, int64_t n, int64_t iters, float eps) {
  // Row softmax as the reference kernel spells it out: exp(x - max) per entry (evaluated in
  // double, rounded to FP32), FP32 sum in index order, FP32 division, then + eps. (Checked on
  // the golden mHC matrices: a softmax evaluated wholly in double and rounded once matches
  // far fewer entries bit for bit.)
  thread_local std::vector<float> e;
  e.resize(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    float* row = m + j * n;
    float mx = row[0];
    for (int64_t k = 1; k < n; ++k) mx = std::max(mx, row[k]);
    float sum = 0.0f;
    for (int64_t k = 0; k < n; ++k) {
      e[static_cast<size_t>(k)] = exp_f32(row[k] - mx);
      sum += e[static_cast<size_t>(k)];
    }
    for (int64_t k = 0; k < n; ++k) row[k] = e[static_cast<size_t>(k)] / sum + eps;
  }
  normalize_cols(m, n, eps);
  for (int64_t it = 1; it < iters; ++it) {
    normalize_rows(m, n, eps);
    normalize_cols(m, n, eps);
  }
}

}  // namespace dsv4
