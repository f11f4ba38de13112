// The two numerics modes of the engine (issue: faithful forward pass).
#pragma once
#include <cstdint>
#include <string>

namespace dsv4 {

enum class Numerics : uint8_t {
  // Reproduces the official inference numerics: BF16 activations where the reference holds
  // BF16, FP8 activation quantisation before FP8/FP4 GEMMs, FP8 simulation of the KV no-RoPE
  // dims, Hadamard + FP4 simulation in the indexer, BF16 attention probabilities.
  kReference,
  // FP32 activations everywhere, weights dequantised exactly, no simulated quantisation.
  kPrecise,
  // Precise, except that products with GGUF Q8_0 / MXFP4 weights quantise their activations
  // to int8 per 32-block and sum integer block products, as ggml's CPU backend does
  // (ops/int8_dot.h): faster decode, less accurate (bench/README.md has its figures). Opt-in.
  kInt8,
};

// The modes' names on the command line and in files: reference, precise, int8.
inline const char* numerics_name(Numerics nm) {
  return nm == Numerics::kReference ? "reference" : nm == Numerics::kPrecise ? "precise" : "int8";
}
// The inverse for a name the command line has checked (anything else: reference).
inline Numerics numerics_from_name(const std::string& name) {
  return name == "precise" ? Numerics::kPrecise : name == "int8" ? Numerics::kInt8 : Numerics::kReference;
}

}  // namespace dsv4
