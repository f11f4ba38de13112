// ModelWeights: the read-only weights of a V4 model, bound by name to tensors of a
// TensorStore (memory-mapped, used in place), after validating every tensor that the
// config implies (presence, dtype, shape) and rejecting any extra tensor.
// Per-sequence state lives elsewhere (model/state.h); weights are shared between sequences.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/safetensors.h"
#include "ops/weight_matrix.h"

namespace dsv4 {

// y[out] = W[out, in] x[in]. `out`/`in` are logical sizes (FP4 stores in/2 bytes per row).
struct Linear {
  const Tensor* weight = nullptr;
  const Tensor* scale = nullptr;  // null unless FP8/FP4
  WeightFormat format = WeightFormat::kF32;
  int64_t out = 0;
  int64_t in = 0;
  int64_t block = 128;  // FP8 block size (weight_block)
  // kGgml (GGUF weights): the row encoding and the official format it stands for.
  GgmlType ggml_type = GgmlType::F32;
  WeightFormat ggml_role = WeightFormat::kF32;

  // The ops-level view of this weight (whole matrix).
  WeightMatrix matrix() const {
    WeightMatrix m;
    m.format = format;
    m.data = weight ? weight->data : nullptr;
    m.scale = scale ? scale->data : nullptr;
    m.rows = out;
    m.cols = in;
    m.row_begin = 0;
    m.total_rows = out;
    m.block = block;
    m.ggml_type = ggml_type;
    m.ggml_role = ggml_role;
    return m;
  }
};

struct HcWeights {  // mHC mixing parameters of one site (attn / ffn / head)
  const Tensor* fn = nullptr;     // F32 [mix, hc*dim]
  const Tensor* base = nullptr;   // F32 [mix]
  const Tensor* scale = nullptr;  // F32 [3] (sites) or [1] (head)
};

struct CompressorWeights {
  const Tensor* ape = nullptr;  // F32 [ratio, coff*d]
  Linear wkv;                   // BF16 [coff*d, dim]
  Linear wgate;                 // BF16 [coff*d, dim]
  const Tensor* norm = nullptr; // BF16 [d]
};

struct IndexerWeights {
  Linear wq_b;          // FP8 [index_heads*index_head_dim, q_lora_rank]
  Linear weights_proj;  // BF16 [index_heads, dim]
  CompressorWeights compressor;  // d = index_head_dim
};

struct AttentionWeights {
  const Tensor* attn_sink = nullptr;  // F32 [n_heads]
  Linear wq_a;                        // FP8 [q_lora_rank, dim]
  const Tensor* q_norm = nullptr;     // BF16 [q_lora_rank]
  Linear wq_b;                        // FP8 [n_heads*head_dim, q_lora_rank]
  Linear wkv;                         // FP8 [head_dim, dim]
  const Tensor* kv_norm = nullptr;    // BF16 [head_dim]
  Linear wo_a;                        // FP8 [o_groups*o_lora_rank, n_heads*head_dim/o_groups]
  Linear wo_b;                        // FP8 [dim, o_groups*o_lora_rank]
  bool has_compressor = false;        // CSA and HCA layers
  CompressorWeights compressor;       // d = head_dim
  bool has_indexer = false;           // CSA layers
  IndexerWeights indexer;
};

struct ExpertWeights {
  Linear w1, w2, w3;  // w1/w3 [inter, dim], w2 [dim, inter]
};

struct MoeWeights {
  Linear gate;                      // BF16 [n_routed, dim]
  const Tensor* bias = nullptr;     // F32 [n_routed] (learned-routing layers)
  const Tensor* tid2eid = nullptr;  // I64 [vocab, n_activated] (hash layers)
  std::vector<ExpertWeights> experts;
  bool has_shared = false;
  ExpertWeights shared;  // FP8, inter = n_shared * moe_inter_dim
};

struct BlockWeights {
  int64_t layer = 0;  // index in compress_ratios (MTP block: n_layers + i)
  HcWeights hc_attn, hc_ffn;
  const Tensor* attn_norm = nullptr;
  const Tensor* ffn_norm = nullptr;
  AttentionWeights attn;
  MoeWeights ffn;
};

struct MtpWeights {
  BlockWeights block;
  Linear e_proj, h_proj;  // FP8 [dim, dim]
  const Tensor* enorm = nullptr;
  const Tensor* hnorm = nullptr;
  const Tensor* norm = nullptr;
  HcWeights hc_head;
};

struct ModelWeights {
  ModelConfig config;
  std::string dir;
  std::shared_ptr<const TensorStore> store;  // owns the mapped files the views point into
  const Tensor* embed = nullptr;  // BF16 [vocab, dim]
  const Tensor* head = nullptr;   // BF16 [vocab, dim]
  const Tensor* norm = nullptr;   // BF16 [dim]
  HcWeights hc_head;
  std::vector<BlockWeights> layers;
  std::vector<MtpWeights> mtp;
};

// One tensor the config implies.
struct TensorSpec {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
};

// Every tensor of the official layout for this config, in a stable order.
std::vector<TensorSpec> expected_tensors(const ModelConfig& config);

// Checks `store` against expected_tensors (missing, extra, dtype, shape, and the I64
// tid2eid values in range); throws Error naming the file and tensor.
void validate_tensors(const ModelConfig& config, const TensorStore& store);

// Loads DIR/config.json + safetensors, validates, binds; or, for a path ending in .gguf, the
// deepseek4 GGUF file (model/gguf_model.h). Throws Error on any problem.
// `memory`: the weight files mapped, or copied into huge-page memory (`--no-mmap`, base/file.h).
std::shared_ptr<const ModelWeights> load_model(const std::string& dir, FileMemory memory = FileMemory::kMapped);

// Reads one byte of every page of every tensor, so that decoding does not pay the page faults
// of first touches (a decode step reads ~1/40 of a MoE model's pages, a new set each step).
// progress(done_bytes, total_bytes) is called now and then when given.
void touch_weight_pages(const ModelWeights& w, const std::function<void(int64_t, int64_t)>& progress = {});

// How much of a tensor (official name) one decoded token reads: none of the MTP block's,
// n_activated / n_routed of the routed experts' (a layer's experts share one size), one row
// of the embedding and of the hash-routing table, all of the rest.
enum class TensorUse : uint8_t { kMtp, kRoutedExpert, kOneRow, kAll };
TensorUse tensor_use(const std::string& name);

// Weight bytes one decoded token reads from the loaded files (by tensor_use; MTP excluded):
// for the official layout model_sizes(config).active_bytes, for a GGUF its own types' bytes.
int64_t active_weight_bytes(const ModelWeights& w);

// Binds already-validated tensors (used by load_model and by tests).
std::shared_ptr<const ModelWeights> bind_weights(const ModelConfig& config, std::shared_ptr<const TensorStore> store,
                                                 const std::string& dir);

}  // namespace dsv4
