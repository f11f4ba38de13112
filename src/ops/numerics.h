// The two numerics modes of the engine (issue: faithful forward pass).
#pragma once
#include <cstdint>

namespace dsv4 {

enum class Numerics : uint8_t {
  // Reproduces the official inference numerics: BF16 activations where the reference holds
  // BF16, FP8 activation quantisation before FP8/FP4 GEMMs, FP8 simulation of the KV no-RoPE
  // dims, Hadamard + FP4 simulation in the indexer, BF16 attention probabilities.
  kReference,
  // FP32 activations everywhere, weights dequantised exactly, no simulated quantisation.
  kPrecise,
};

}  // namespace dsv4
