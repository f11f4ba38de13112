// Random V4 models in the official checkpoint layout (`dsv4 init`): presets, config.json
// emission, deterministic weight generation with proper FP8 / FP4 quantisation, and a
// streaming, sharded, per-file atomic writer.
//
// Determinism: every tensor draws from its own generator, seeded from (seed, tensor name),
// and the draws use integer arithmetic plus exactly-rounded float operations only (no libm
// transcendental functions, no std::*_distribution), so the same seed gives the same bytes on
// every platform, for any thread count and any shard size.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/safetensors.h"
#include "model/weights.h"

namespace dsv4 {

// Names of the built-in presets ("tiny", "flash-scaled"), each with a one-line description.
struct InitPreset {
  std::string name;
  std::string description;
};
const std::vector<InitPreset>& init_presets();
// The config of a preset; throws Error listing the known presets for an unknown name.
ModelConfig init_preset_config(const std::string& name);

// The HF-format config.json text of `c` (every field of spec 1.1 that applies).
// parse_config(config_to_hf_json(c)) reproduces c (round trip).
std::string config_to_hf_json(const ModelConfig& c);

// Logical parameter and byte counts of the official layout of a config.
struct ModelSizes {
  int64_t tensors = 0;
  int64_t params = 0;         // logical values of all weights (FP4 counts 1 per value; scales excluded)
  int64_t bytes = 0;          // stored bytes of all tensors (scales included)
  int64_t mtp_bytes = 0;      // stored bytes of the MTP block(s)
  int64_t active_params = 0;  // main model, per token: dense weights + n_activated routed experts
  int64_t active_bytes = 0;   //   (+ their scales) + one embedding row + one tid2eid row; no MTP
};
ModelSizes model_sizes(const ModelConfig& c);

struct InitOptions {
  uint64_t seed = 0;
  int64_t shard_bytes = int64_t{2} << 30;  // start a new shard before a file would exceed this
  int threads = 1;                         // generator threads (the output does not depend on it)
  bool force = false;                      // allow a non-empty output directory
  std::string tokenizer_gz;                // gzip'ed tokenizer.json to install; empty: none
};

struct InitResult {
  ModelSizes sizes;
  std::vector<std::string> files;  // written, relative to the output dir
};

// Writes config.json, the safetensors shard(s) (+ model.safetensors.index.json when sharded)
// and tokenizer.json into `dir` (created if missing). Each file is written atomically; shards
// are generated and written tensor by tensor, so memory stays at a few tensors.
// Throws Error for a non-empty dir without `force` and for I/O failures.
InitResult write_random_model(const ModelConfig& c, const std::string& dir, const InitOptions& opt);

// The tensor(s) of one generation unit: a quantised weight comes with its `.scale`.
// Exposed for tests; write_random_model uses the same function.
std::vector<TensorData> generate_tensors(const ModelConfig& c, const std::vector<TensorSpec>& unit, uint64_t seed);

// Decompresses a gzip file (used for the tokenizer asset); throws Error naming the path.
std::string gunzip_file(const std::string& path);

// The scalar encoders used by the generator (round to nearest even, saturating). Kept here,
// not in ops/, so that the model writer does not depend on the numeric kernels.
namespace init_codec {
uint16_t f32_to_bf16(float x);
uint8_t f32_to_e4m3(float x);  // |x| <= 448 after saturation
uint8_t f32_to_e2m1(float x);  // |x| <= 6 after saturation
// Power-of-two scale exponent e (scale = 2^e) so that amax / 2^e <= max_code:
// e = ceil(log2(amax / max_code)) computed exactly; amax == 0 gives 0.
int scale_exponent(float amax, float max_code);
// Block-scaled FP8: x[rows, cols] -> E4M3 codes[rows, cols] and E8M0 scales
// [ceil(rows/block), ceil(cols/block)], one power-of-two scale per tile from the tile's amax.
void quantize_fp8(const float* x, int64_t rows, int64_t cols, int64_t block, uint8_t* codes, uint8_t* scales);
// FP4 row: x[cols] (cols % 32 == 0) -> packed E2M1 bytes [cols/2] (low nibble = even column)
// and E8M0 scales [cols/32].
void quantize_fp4_row(const float* x, int64_t cols, uint8_t* packed, uint8_t* scales);
}  // namespace init_codec

}  // namespace dsv4
