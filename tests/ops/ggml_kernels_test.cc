// The SIMD decoders of the ggml types (ops/ggml_kernels) on every compiled dispatch target:
// every decoded value has the bits of the scalar dequantize_ggml (itself tested against
// ggml's reference in tests/model/gguf_dequant_test.cc) and of ggml's own vectors
// (tests/data/gguf/dequant_vectors.gguf), for whole rows and for chunks of them.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "model/gguf.h"
#include "ops/ggml_kernels.h"
#include "ops/ggml_types.h"
#include "ops/linear_kernels.h"
#include "test_weights.h"

namespace dsv4 {
namespace {

struct TargetGuard {
  ~TargetGuard() { linear_kernels::force_target(0); }
};

// Counts values whose bits differ (two NaNs count as equal: with random scale fields a NaN's
// payload may differ between the F16C conversion and the scalar one; no finite value may).
int64_t count_differences(const float* got, const float* want, int64_t n, int64_t* first) {
  int64_t bad = 0;
  *first = -1;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t a, b;
    std::memcpy(&a, &got[i], 4);
    std::memcpy(&b, &want[i], 4);
    if (a == b || (std::isnan(got[i]) && std::isnan(want[i]))) continue;
    if (bad++ == 0) *first = i;
  }
  return bad;
}

std::string name_of(GgmlType t) { return ggml_type_name(static_cast<uint32_t>(t)); }

TEST(GgmlKernels, EveryTypeHasASimdDecoder) {
  for (GgmlType t : ggml_weight_types()) EXPECT_TRUE(ggml_kernels::has_simd_decoder(t)) << name_of(t);
}

TEST(GgmlKernels, SimdDecodeIsBitExactOnEveryTarget) {
  TargetGuard guard;
  for (int64_t target : linear_kernels::available_targets()) {
    linear_kernels::force_target(target);
    std::mt19937 rng(31);
    for (GgmlType type : ggml_weight_types()) {
      const int64_t block = ggml_type_info(static_cast<uint32_t>(type))->block;
      const int64_t n = block == 1 ? 203 : block * (block == 256 ? 5 : 23);  // float types: a partial vector
      for (bool wild : {false, true}) {
        SCOPED_TRACE(name_of(type) + (wild ? " wild" : "") + " target " + linear_kernels::target_name(target));
        const std::vector<uint8_t> data = make_ggml_blocks(type, n, rng, wild);
        std::vector<float> want(static_cast<size_t>(n)), got(static_cast<size_t>(n), -1.0f);
        dequantize_ggml(type, data.data(), n, want.data());
        ggml_kernels::decode(type, data.data(), 0, n, got.data());
        int64_t first = 0;
        EXPECT_EQ(count_differences(got.data(), want.data(), n, &first), 0)
            << "first at " << first << ": " << got[first] << " vs " << want[first];
        // A chunk of the row: blocks [1, n / block - 1).
        const int64_t e0 = block == 1 ? 17 : block, e1 = n - block;
        std::vector<float> part(static_cast<size_t>(e1 - e0) + 1, -2.0f);
        ggml_kernels::decode(type, data.data(), e0, e1, part.data());
        EXPECT_EQ(count_differences(part.data(), want.data() + e0, e1 - e0, &first), 0) << "chunk, first at " << first;
        EXPECT_EQ(part.back(), -2.0f) << "wrote past the chunk";
      }
    }
  }
}

TEST(GgmlKernels, GgmlReferenceVectorsOnEveryTarget) {
  TargetGuard guard;
  const GgufFile f = GgufFile::open(std::string(DSV4_TEST_DATA_DIR) + "/gguf/dequant_vectors.gguf");
  int checked = 0;
  for (int64_t target : linear_kernels::available_targets()) {
    linear_kernels::force_target(target);
    for (const auto& [name, q] : f.tensors()) {
      if (name.size() < 2 || name.substr(name.size() - 2) != ".q") continue;
      const GgufTensor* ref = f.find_tensor(name.substr(0, name.size() - 2) + ".f");
      ASSERT_NE(ref, nullptr) << name;
      const int64_t n = q.numel();
      std::vector<float> got(static_cast<size_t>(n));
      ggml_kernels::decode(q.type, q.data, 0, n, got.data());
      std::vector<float> want(static_cast<size_t>(n));
      std::memcpy(want.data(), ref->data, static_cast<size_t>(n) * 4);
      int64_t first = 0;
      EXPECT_EQ(count_differences(got.data(), want.data(), n, &first), 0)
          << name << " target " << linear_kernels::target_name(target) << " first at " << first;
      ++checked;
    }
  }
  EXPECT_GE(checked, 19);
}

TEST(GgmlKernels, UnsupportedTypeIsAnError) {
  std::vector<uint8_t> block(64, 0);
  float out[256];
  try {
    ggml_kernels::decode(GgmlType::IQ1_M, block.data(), 0, 256, out);
    FAIL() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("iq1_m"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dsv4
