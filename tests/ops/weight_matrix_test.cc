#include "ops/weight_matrix.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "base/error.h"
#include "model/safetensors.h"
#include "ops/formats.h"

namespace dsv4 {
namespace {

const std::string kTinyA = std::string(DSV4_TEST_DATA_DIR) + "/tiny-a";

TEST(DequantizeRows, Fp8BlockScalesByAbsoluteRow) {
  // 192 x 192 with block 128: scale tensor 2 x 2 (partial blocks on both axes).
  const int64_t rows = 192, cols = 192;
  std::vector<uint8_t> codes(static_cast<size_t>(rows * cols), 0x38);  // 1.0
  const std::vector<uint8_t> scales = {127, 128, 129, 130};              // 1, 2, 4, 8
  codes[0] = 0x01;                    // 2^-9 * 1
  codes[130 * cols + 131] = 0xC0;     // -2 * 8
  WeightMatrix w;
  w.format = WeightFormat::kFp8Block;
  w.data = codes.data();
  w.scale = scales.data();
  w.rows = rows;
  w.cols = cols;
  w.total_rows = rows;
  std::vector<float> out(static_cast<size_t>(cols));
  dequantize_rows(w, 0, 1, out.data());
  EXPECT_EQ(out[0], std::ldexp(1.0f, -9));
  EXPECT_EQ(out[127], 1.0f);
  EXPECT_EQ(out[128], 2.0f);
  EXPECT_EQ(out[191], 2.0f);
  dequantize_rows(w, 130, 1, out.data());
  EXPECT_EQ(out[0], 4.0f);
  EXPECT_EQ(out[131], -16.0f);
  // A row slice starting at stored row 100: its row 30 is stored row 130.
  const WeightMatrix s = w.row_slice(100, 50);
  dequantize_rows(s, 30, 1, out.data());
  EXPECT_EQ(out[0], 4.0f);
  EXPECT_EQ(out[131], -16.0f);
  dequantize_rows(s, 27, 1, out.data());  // stored row 127: first block row
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_THROW(dequantize_rows(s, 40, 11, out.data()), Error);
  WeightMatrix no_scale = w;
  no_scale.scale = nullptr;
  EXPECT_THROW(dequantize_rows(no_scale, 0, 1, out.data()), Error);
}

TEST(DequantizeRows, Fp4NibblesAndRowScales) {
  const int64_t rows = 2, cols = 64;
  std::vector<uint8_t> packed(static_cast<size_t>(rows * cols / 2), 0x00);
  packed[0] = 0x21;                 // col 0: code 1 (0.5), col 1: code 2 (1.0)
  packed[16] = 0xF7;                // col 32: 6, col 33: -6
  packed[32 + 1] = 0x9A;            // row 1, col 2: -1, col 3: -0.5
  const std::vector<uint8_t> scales = {127, 126, 129, 127};  // [2, 2]: 1, 0.5 / 4, 1
  WeightMatrix w;
  w.format = WeightFormat::kFp4;
  w.data = packed.data();
  w.scale = scales.data();
  w.rows = rows;
  w.cols = cols;
  w.total_rows = rows;
  std::vector<float> out(static_cast<size_t>(rows * cols));
  dequantize_rows(w, 0, 2, out.data());
  EXPECT_EQ(out[0], 0.5f);
  EXPECT_EQ(out[1], 1.0f);
  EXPECT_EQ(out[2], 0.0f);
  EXPECT_EQ(out[32], 3.0f);
  EXPECT_EQ(out[33], -3.0f);
  EXPECT_EQ(out[64 + 2], -4.0f);
  EXPECT_EQ(out[64 + 3], -2.0f);
  const WeightMatrix s = w.row_slice(1, 1);
  dequantize_rows(s, 0, 1, out.data());
  EXPECT_EQ(out[2], -4.0f);
}

TEST(DequantizeRows, Bf16AndF32) {
  const std::vector<uint16_t> b = {0x3F80, 0xC000, 0x4040, 0x0000};
  WeightMatrix w;
  w.format = WeightFormat::kBf16;
  w.data = reinterpret_cast<const uint8_t*>(b.data());
  w.rows = 2;
  w.cols = 2;
  w.total_rows = 2;
  float out[2];
  dequantize_rows(w.row_slice(1, 1), 0, 1, out);
  EXPECT_EQ(out[0], 3.0f);
  EXPECT_EQ(out[1], 0.0f);
  const std::vector<float> f = {1.5f, -2.5f, 7.0f, 8.0f};
  w.format = WeightFormat::kF32;
  w.data = reinterpret_cast<const uint8_t*>(f.data());
  dequantize_rows(w, 1, 1, out);
  EXPECT_EQ(out[0], 7.0f);
  EXPECT_EQ(out[1], 8.0f);
}

WeightMatrix view_of(const TensorStore& store, const std::string& weight_name) {
  const Tensor& wt = store.get(weight_name);
  const std::string scale_name = weight_name.substr(0, weight_name.size() - std::string("weight").size()) + "scale";
  const Tensor& st = store.get(scale_name);
  WeightMatrix w;
  w.data = wt.data;
  w.scale = st.data;
  w.rows = wt.dim(0);
  w.total_rows = wt.dim(0);
  if (wt.dtype == DType::F8_E4M3) {
    w.format = WeightFormat::kFp8Block;
    w.cols = wt.dim(1);
  } else {
    EXPECT_EQ(wt.dtype, DType::I8);
    w.format = WeightFormat::kFp4;
    w.cols = 2 * wt.dim(1);
  }
  return w;
}

// The checkpoint's FP8 / FP4 weights decode exactly to the harness's dequantised samples.
TEST(DequantizeRows, MatchesGoldenSamples) {
  const TensorStore ckpt = TensorStore::open_dir(kTinyA + "/checkpoint");
  const TensorStore samples = TensorStore::open_file(kTinyA + "/dequant_samples.safetensors");
  int checked = 0;
  for (const auto& [name, tensor] : samples.tensors()) {
    SCOPED_TRACE(name);
    const WeightMatrix w = view_of(ckpt, name);
    ASSERT_EQ(tensor.dim(0), w.rows);
    ASSERT_EQ(tensor.dim(1), w.cols);
    const std::vector<float> expected = samples.read_f32(name);
    std::vector<float> got(expected.size());
    dequantize_rows(w, 0, w.rows, got.data());
    int64_t mismatches = 0;
    for (size_t i = 0; i < got.size(); ++i) mismatches += got[i] != expected[i];
    EXPECT_EQ(mismatches, 0);
    // Row slices decode the same rows (scales by absolute row; wkv has 192 rows = 1.5 blocks).
    const int64_t first = w.rows / 2 + 3;
    const WeightMatrix s = w.row_slice(first, w.rows - first);
    std::vector<float> part(static_cast<size_t>(s.rows * w.cols));
    dequantize_rows(s, 0, s.rows, part.data());
    for (size_t i = 0; i < part.size(); ++i) {
      ASSERT_EQ(part[i], expected[static_cast<size_t>(first * w.cols) + i]) << i;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 4);
  // Row 0 of wkv starts with the decoder edge cases (README).
  const Tensor& wkv = ckpt.get("layers.0.attn.wkv.weight");
  const uint8_t edge[10] = {0x00, 0x80, 0x01, 0x81, 0x07, 0x87, 0x08, 0x88, 0x7E, 0xFE};
  for (int i = 0; i < 10; ++i) EXPECT_EQ(wkv.data[i], edge[i]) << i;
  const std::vector<float> wkv_f = samples.read_f32("layers.0.attn.wkv.weight");
  const Tensor& wkv_s = ckpt.get("layers.0.attn.wkv.scale");
  const float s00 = e8m0_to_f32(wkv_s.data[0]);
  EXPECT_EQ(wkv_f[2], std::ldexp(1.0f, -9) * s00);
  EXPECT_EQ(wkv_f[8], 448.0f * s00);
  EXPECT_TRUE(std::signbit(wkv_f[1]));
}

}  // namespace
}  // namespace dsv4
