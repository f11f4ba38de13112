// Helpers for the golden-data tests of the forward pass (tests/data/tiny-a, the repo copy).
#pragma once
#include <cmath>
#include <cstdlib>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "model/gguf_model.h"
#include "model/safetensors.h"
#include "model/weights.h"

namespace dsv4::test {

inline const std::string kTinyA = std::string(DSV4_TEST_DATA_DIR) + "/tiny-a";

// With DSV4_TEST_TINY_GGUF=1 the tests run on the GGUF copy of tiny-a in llama.cpp's layout
// (tests/data/gguf/tiny-a.gguf + its MTP sidecar) instead of the safetensors checkpoint.
inline std::shared_ptr<const ModelWeights> tiny_model() {
  static std::shared_ptr<const ModelWeights> w =
      std::getenv("DSV4_TEST_TINY_GGUF") != nullptr
          ? load_gguf_model(std::string(DSV4_TEST_DATA_DIR) + "/gguf/tiny-a.gguf", std::string(DSV4_TEST_DATA_DIR) + "/gguf/tiny-a-mtp.gguf")
          : load_model(kTinyA + "/checkpoint");
  return w;
}

// Cached golden files.
inline const TensorStore& golden(const std::string& rel) {
  static std::map<std::string, std::unique_ptr<TensorStore>> cache;
  auto it = cache.find(rel);
  if (it == cache.end())
    it = cache.emplace(rel, std::make_unique<TensorStore>(TensorStore::open_file(kTinyA + "/" + rel))).first;
  return *it->second;
}

inline std::vector<int64_t> seq_tokens(const std::string& name) { return golden("tokens.safetensors").read_i64(name); }

struct Diff {
  double max_abs = 0, mean_abs = 0, rel_fro = 0;
};
inline Diff diff(const float* a, const float* b, size_t n) {
  Diff d;
  double num = 0, den = 0, sum = 0;
  for (size_t i = 0; i < n; ++i) {
    double e = std::abs(static_cast<double>(a[i]) - b[i]);
    d.max_abs = std::max(d.max_abs, e);
    sum += e;
    num += e * e;
    den += static_cast<double>(b[i]) * b[i];
  }
  d.mean_abs = n ? sum / static_cast<double>(n) : 0;
  d.rel_fro = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  return d;
}
inline Diff diff(const std::vector<float>& a, const std::vector<float>& b) {
  return diff(a.data(), b.data(), std::min(a.size(), b.size()));
}

// Fraction of rows whose argmax agrees.
inline double argmax_agreement(const float* a, const float* b, int64_t rows, int64_t cols) {
  int64_t same = 0;
  for (int64_t r = 0; r < rows; ++r) {
    int64_t ia = 0, ib = 0;
    for (int64_t c = 1; c < cols; ++c) {
      if (a[r * cols + c] > a[r * cols + ia]) ia = c;
      if (b[r * cols + c] > b[r * cols + ib]) ib = c;
    }
    same += ia == ib;
  }
  return static_cast<double>(same) / static_cast<double>(rows);
}

// Rows whose sets of valid (>= 0) entries differ.
inline int64_t rows_with_different_sets(const int64_t* a, const int64_t* b, int64_t rows, int64_t cols_a,
                                        int64_t cols_b) {
  int64_t bad = 0;
  for (int64_t r = 0; r < rows; ++r) {
    std::set<int64_t> sa, sb;
    for (int64_t c = 0; c < cols_a; ++c)
      if (a[r * cols_a + c] >= 0) sa.insert(a[r * cols_a + c]);
    for (int64_t c = 0; c < cols_b; ++c)
      if (b[r * cols_b + c] >= 0) sb.insert(b[r * cols_b + c]);
    bad += sa != sb;
  }
  return bad;
}

}  // namespace dsv4::test
