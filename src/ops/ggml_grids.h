// The ggml codebooks of ops/ggml_types.cc (IQ grids in gguf-py's packed index form, sign
// patterns, non-linear value tables), shared with the SIMD decoders of ops/ggml_kernels.cc.
#pragma once
#include <cstdint>

namespace dsv4::ggml_grids {
const uint16_t* iq2xxs();       // 256 entries: 8 two-bit indexes into iq2_values()
const uint16_t* iq2xs();        // 512 entries, as iq2xxs
const uint16_t* iq2s();         // 1024 entries, as iq2xxs
const uint16_t* iq3xxs();       // 256 entries: 4 three-bit indexes (one per nibble) into iq3xxs_values()
const uint16_t* iq3s();         // 512 entries, into iq3s_values()
const uint8_t* iq2_signs();     // 128 sign bytes (ggml's ksigns_iq2xs)
const uint8_t* iq2_values();    // {8, 25, 43}
const uint8_t* iq3xxs_values();  // 8 values
const uint8_t* iq3s_values();    // 8 values
const int8_t* iq4nl_values();   // 16 values (ggml's kvalues_iq4nl)
const int8_t* mxfp4_values();   // 16 values (ggml's kvalues_mxfp4: 2 x E2M1)
}  // namespace dsv4::ggml_grids
