// Element types of stored tensors (the safetensors dtype strings).
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dsv4 {

enum class DType : uint8_t {
  F32,
  BF16,
  F16,
  F8_E4M3,  // float8_e4m3fn: bias 7, no infinities, 0x7F/0xFF NaN
  F8_E8M0,  // unsigned exponent-only scale: 2^(byte-127)
  I8,       // also packed FP4 E2M1 (two codes per byte, low nibble = even column)
  U8,
  I32,
  I64,
  F64,
};

size_t dtype_size(DType t);
std::string_view dtype_name(DType t);
std::optional<DType> dtype_from_name(std::string_view name);

}  // namespace dsv4
