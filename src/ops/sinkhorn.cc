#include "ops/sinkhorn.h"

#include <cmath>
#include <vector>

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
  // Row softmax, evaluated in double and rounded once per entry (the golden data's rule for
  // softmax), then + eps on every entry in FP32.
  for (int64_t j = 0; j < n; ++j) {
    float* row = m + j * n;
    double mx = -INFINITY;
    for (int64_t k = 0; k < n; ++k) mx = std::fmax(mx, static_cast<double>(row[k]));
    double sum = 0.0;
    for (int64_t k = 0; k < n; ++k) sum += std::exp(static_cast<double>(row[k]) - mx);
    for (int64_t k = 0; k < n; ++k) {
      const float p = static_cast<float>(std::exp(static_cast<double>(row[k]) - mx) / sum);
      row[k] = p + eps;
    }
  }
  normalize_cols(m, n, eps);
  for (int64_t it = 1; it < iters; ++it) {
    normalize_rows(m, n, eps);
    normalize_cols(m, n, eps);
  }
}

}  // namespace dsv4
