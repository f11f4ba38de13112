// Expanded ggml codebooks (from ops/ggml_grids.h) for the SIMD kernels that unpack the
// codebook types by table: ops/ggml_kernels.cc (decoders) and ops/int8_dot.cc (int8 products).
#pragma once
#include <cstdint>

#include "ops/ggml_grids.h"

namespace dsv4::ggml_tables {

// Expanded codebooks: a grid entry as its 8 (IQ2) or 4 (IQ3) value bytes, a sign byte as a
// byte mask (0xFF where the bit is set), a 4-bit code byte as its two table values.
struct Tables {
  uint64_t iq2xxs[256], iq2xs[512], iq2s[1024];
  uint32_t iq3xxs[256], iq3s[512];
  uint64_t sign_mask[256];       // sign byte -> byte mask
  uint64_t iq2_sign_mask[128];   // 7-bit sign index -> byte mask of ksigns_iq2xs
  uint16_t iq4nl_pair[256], mxfp4_pair[256];  // byte -> (value of low nibble) | (value of high nibble) << 8
};

inline const Tables& tables() {
  static const Tables t = [] {
    Tables r{};
    auto grid2 = [](const uint16_t* g, int n, uint64_t* out) {
      for (int i = 0; i < n; ++i) {
        uint64_t v = 0;
        for (int j = 0; j < 8; ++j) v |= uint64_t{ggml_grids::iq2_values()[(g[i] >> (2 * j)) & 3]} << (8 * j);
        out[i] = v;
      }
    };
    grid2(ggml_grids::iq2xxs(), 256, r.iq2xxs);
    grid2(ggml_grids::iq2xs(), 512, r.iq2xs);
    grid2(ggml_grids::iq2s(), 1024, r.iq2s);
    auto grid3 = [](const uint16_t* g, const uint8_t* values, int n, uint32_t* out) {
      for (int i = 0; i < n; ++i) {
        uint32_t v = 0;
        for (int j = 0; j < 4; ++j) v |= uint32_t{values[(g[i] >> (4 * j)) & 7]} << (8 * j);
        out[i] = v;
      }
    };
    grid3(ggml_grids::iq3xxs(), ggml_grids::iq3xxs_values(), 256, r.iq3xxs);
    grid3(ggml_grids::iq3s(), ggml_grids::iq3s_values(), 512, r.iq3s);
    for (int s = 0; s < 256; ++s) {
      uint64_t m = 0;
      for (int j = 0; j < 8; ++j) {
        if ((s >> j) & 1) m |= uint64_t{0xFF} << (8 * j);
      }
      r.sign_mask[s] = m;
    }
    for (int i = 0; i < 128; ++i) r.iq2_sign_mask[i] = r.sign_mask[ggml_grids::iq2_signs()[i]];
    for (int b = 0; b < 256; ++b) {
      r.iq4nl_pair[b] = static_cast<uint16_t>(static_cast<uint8_t>(ggml_grids::iq4nl_values()[b & 15]) |
                                              static_cast<uint8_t>(ggml_grids::iq4nl_values()[b >> 4]) << 8);
      r.mxfp4_pair[b] = static_cast<uint16_t>(static_cast<uint8_t>(ggml_grids::mxfp4_values()[b & 15]) |
                                              static_cast<uint8_t>(ggml_grids::mxfp4_values()[b >> 4]) << 8);
    }
    return r;
  }();
  return t;
}

// Byte-wise negation of the bytes of v selected by mask m (0xFF bytes). Every grid value is
// in 1..127, so (v ^ 0xFF) + 1 = 256 - v never carries into the next byte.
inline uint64_t negate_bytes(uint64_t v, uint64_t m) { return (v ^ m) + (m & 0x0101010101010101ull); }

}  // namespace dsv4::ggml_tables
