// ggml dequantization (ops/ggml_types) against vectors made by ggml's own numpy reference
// (tests/data/gguf/make_dequant_vectors.py, gguf-py's dequantize_blocks): every value must have
// the same bits, directly and through a WeightMatrix row view.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "model/gguf.h"
#include "ops/ggml_types.h"
#include "ops/weight_matrix.h"

using namespace dsv4;

namespace {

const GgufFile& vectors() {
  static const GgufFile f = GgufFile::open(std::string(DSV4_TEST_DATA_DIR) + "/gguf/dequant_vectors.gguf");
  return f;
}

class GgmlDequant : public testing::TestWithParam<std::string> {};

TEST_P(GgmlDequant, BitExactVsGgmlReference) {
  const GgufTensor* q = vectors().find_tensor(GetParam() + ".q");
  const GgufTensor* f = vectors().find_tensor(GetParam() + ".f");
  ASSERT_NE(q, nullptr);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(ggml_type_name(static_cast<uint32_t>(q->type)), GetParam());
  const int64_t n = q->numel();
  ASSERT_EQ(f->numel(), n);
  std::vector<float> out(static_cast<size_t>(n));
  dequantize_ggml(q->type, q->data, n, out.data());
  int64_t differ = 0, first = -1;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t a, b;
    std::memcpy(&a, &out[static_cast<size_t>(i)], 4);
    std::memcpy(&b, f->data + 4 * i, 4);
    if (a != b && first < 0) first = i;
    differ += a != b;
  }
  EXPECT_EQ(differ, 0) << "first at " << first;

  // The same through a matrix view of the blocks as rows (rows of one or two blocks).
  const auto info = *ggml_type_info(static_cast<uint32_t>(q->type));
  const int64_t cols = info.block == 1 ? 64 : info.block * 2;
  WeightMatrix w;
  w.format = WeightFormat::kGgml;
  w.ggml_type = q->type;
  w.data = q->data;
  w.total_rows = n / cols;
  w.cols = cols;
  const WeightMatrix v = w.row_slice(1, w.total_rows - 1);
  std::vector<float> rows(static_cast<size_t>((w.total_rows - 1) * cols));
  WeightMatrix full = v;
  full.rows = w.total_rows - 1;
  dequantize_rows(full, 0, full.rows, rows.data());
  EXPECT_EQ(std::memcmp(rows.data(), f->data + 4 * cols, rows.size() * 4), 0);
}

INSTANTIATE_TEST_SUITE_P(Types, GgmlDequant,
                         testing::Values("f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K",
                                         "iq4_nl", "iq4_xs", "iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s"));

TEST(GgmlDequant, UnsupportedTypesAreErrors) {
  std::vector<uint8_t> block(56, 0);
  float out[256];
  try {
    dequantize_ggml(GgmlType::IQ1_M, block.data(), 256, out);
    FAIL() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("iq1_m"), std::string::npos);
  }
  EXPECT_FALSE(ggml_type_info(99).has_value());
  EXPECT_EQ(ggml_type_name(99), "type 99");
}

TEST(GgmlDequant, Mxfp4MatchesE2m1TimesE8m0) {
  // ggml's MXFP4 table is twice the E2M1 values with the E8M0 exponent lowered by one.
  const float e2m1[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};
  for (int e : {0, 1, 2, 100, 127, 128, 200, 254}) {
    uint8_t block[17];
    block[0] = static_cast<uint8_t>(e);
    for (int j = 0; j < 16; ++j) block[1 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
    float out[32];
    dequantize_ggml(GgmlType::MXFP4, block, 32, out);
    for (int j = 0; j < 16; ++j) {
      EXPECT_EQ(out[j], e2m1[j] * std::ldexp(1.0f, e - 127)) << e << " " << j;
      EXPECT_EQ(out[j + 16], e2m1[15 - j] * std::ldexp(1.0f, e - 127)) << e << " " << j;
    }
  }
}

}  // namespace

namespace {

// ggml's own acceptance test for its quantisers (tests/test-quantize-fns.cpp): data
// 0.1 + 2 cos(i), 4096 values, total error sqrt(sum (x - y)^2) / n below 0.002 (0.0075 for
// 2-bit types). Here the quantiser is dsv4's and the decoder the bit-exact one tested above.
float ggml_total_error(GgmlType type) {
  const int64_t n = 32 * 128;
  std::vector<float> x(static_cast<size_t>(n)), y(x.size());
  for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(i)] = 0.1f + 2 * std::cos(static_cast<float>(i));
  std::vector<uint8_t> q(static_cast<size_t>(ggml_row_bytes(type, n)));
  quantize_ggml(type, x.data(), n, q.data());
  dequantize_ggml(type, q.data(), n, y.data());
  double sum = 0;
  for (size_t i = 0; i < x.size(); ++i) sum += (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
  return static_cast<float>(std::sqrt(sum)) / static_cast<float>(n);
}

TEST(GgmlQuantize, WithinGgmlsTotalErrorBounds) {
  EXPECT_TRUE(ggml_quantizable(GgmlType::Q4_K));
  EXPECT_TRUE(ggml_quantizable(GgmlType::Q2_K));
  const float q8 = ggml_total_error(GgmlType::Q8_0), q4k = ggml_total_error(GgmlType::Q4_K), q2k = ggml_total_error(GgmlType::Q2_K);
  std::printf("total error: q8_0 %.3g, q4_K %.3g, q2_K %.3g\n", q8, q4k, q2k);
  EXPECT_LT(q8, 0.002f);
  EXPECT_LT(q4k, 0.002f);
  EXPECT_LT(q2k, 0.0075f);
}

TEST(GgmlQuantize, KQuantsKeepConstantAndZeroBlocks) {
  // A block of zeros decodes to zeros; a constant block to within one F16 rounding of its value.
  for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q2_K}) {
    std::vector<float> x(256, 0.0f), y(256);
    std::vector<uint8_t> q(static_cast<size_t>(ggml_row_bytes(t, 256)));
    quantize_ggml(t, x.data(), 256, q.data());
    dequantize_ggml(t, q.data(), 256, y.data());
    for (float v : y) EXPECT_EQ(v, 0.0f);
    for (float c : {0.75f, -1.5f}) {
      std::fill(x.begin(), x.end(), c);
      quantize_ggml(t, x.data(), 256, q.data());
      dequantize_ggml(t, q.data(), 256, y.data());
      for (float v : y) EXPECT_NEAR(v, c, std::fabs(c) * 0x1p-10f) << ggml_type_name(static_cast<uint32_t>(t));
    }
  }
}

TEST(GgmlQuantize, KQuantsRejectBadInput) {
  std::vector<float> x(256, 1.0f);
  std::vector<uint8_t> q(144);
  x[7] = std::nanf("");
  try {
    quantize_ggml(GgmlType::Q4_K, x.data(), 256, q.data());
    FAIL() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("q4_K: value nan at 7 is not finite"), std::string::npos) << e.what();
  }
  EXPECT_THROW(quantize_ggml(GgmlType::Q2_K, x.data(), 128, q.data()), std::exception);
}

}  // namespace
