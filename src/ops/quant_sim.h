// Simulated activation quantisation of the reference kernels (spec 3.0.4, 3.0.5, 3.0.7).
#pragma once
#include <cstdint>

namespace dsv4 {

// act_quant, GEMM mode: per block of `block` values of x[0..n): a = max(amax, 1e-4),
// s = 2^ceil(log2(a * fl32(1/448))) via exponent bits, codes[i] = e4m3(clamp(x/s, +-448)).
// scales[n / block] receives s. n should be a multiple of block (the reference requires it);
// a trailing partial block is quantised on its own (scales then has ceil(n / block) entries).
void act_quant_fp8(const float* x, int64_t n, int64_t block, uint8_t* codes, float* scales);

// act_quant, returning the dequantised values codes * s (what a product with the quantised
// activations needs) instead of the codes: values[i] = e4m3_to_f32(codes[i]) * scales[i / block]
// with codes as act_quant_fp8 gives them, by bit operations (no libm calls).
void act_quant_fp8_values(const float* x, int64_t n, int64_t block, float* values, float* scales);

// act_quant, in-place mode: x <- bf16(e4m3(x/s) * s) per block (KV no-RoPE dims: block 64).
void fp8_simulate(float* x, int64_t n, int64_t block);

// fp4_act_quant: per block of 32: a = max(amax, 6 * 2^-126), s = 2^ceil(log2(a * fl32(1/6))),
// x <- bf16(e2m1(clamp(x/s, +-6)) * s).
void fp4_simulate(float* x, int64_t n, int64_t block);

// x <- x H_n / sqrt(n), H_n the Sylvester Hadamard matrix (natural order), n a power of two.
// FP32 butterfly (stages h = 1, 2, 4, ...), then one FP32 multiply by fl32(1/sqrt(n)).
// Does not round: the reference's output is BF16, so in kReference round the result to BF16
// (round_bf16) before fp4_simulate.
void hadamard_rotate(float* x, int64_t n);

}  // namespace dsv4
