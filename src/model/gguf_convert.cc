#include "model/gguf_convert.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <regex>

#include "base/error.h"
#include "model/gguf.h"
#include "model/gguf_model.h"
#include "model/weights.h"
#include "ops/formats.h"
#include "ops/weight_matrix.h"

namespace dsv4 {
namespace {

// One GGUF tensor to write: its info and how to produce its bytes.
struct Plan {
  GgufTensorInfo info;
  std::function<void(std::vector<uint8_t>&)> produce;
};

uint64_t fnv1a(const uint8_t* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

// The stored matrix of an official tensor as an ops view (FP8 / FP4 with their scales).
WeightMatrix source_matrix(const TensorStore& store, const std::string& name, int64_t rows, int64_t cols, int64_t block) {
  const Tensor& t = store.get(name);
  WeightMatrix m;
  m.data = t.data;
  m.rows = rows;
  m.cols = cols;
  m.total_rows = rows;
  m.block = block;
  switch (t.dtype) {
    case DType::F32: m.format = WeightFormat::kF32; break;
    case DType::BF16: m.format = WeightFormat::kBf16; break;
    case DType::F8_E4M3:
      m.format = WeightFormat::kFp8Block;
      m.scale = store.get(name.substr(0, name.size() - 7) + ".scale").data;
      break;
    case DType::I8:
      m.format = WeightFormat::kFp4;
      m.scale = store.get(name.substr(0, name.size() - 7) + ".scale").data;
      break;
    default: throw Error("convert: tensor " + name + " has dtype " + std::string(dtype_name(t.dtype)) + ", not a matrix");
  }
  return m;
}

// Rows of `m` dequantized and stored as `type`, appended to out.
void encode_rows(const WeightMatrix& m, GgmlType type, std::vector<uint8_t>& out) {
  const int64_t row_bytes = ggml_row_bytes(type, m.cols);
  std::vector<float> row(static_cast<size_t>(m.cols));
  const size_t base = out.size();
  out.resize(base + static_cast<size_t>(row_bytes * m.rows));
  for (int64_t r = 0; r < m.rows; ++r) {
    dequantize_rows(m, r, 1, row.data());
    quantize_ggml(type, row.data(), m.cols, out.data() + base + static_cast<size_t>(r * row_bytes));
  }
}

// FP4 (two E2M1 codes per byte, low nibble = even column; E8M0 scale per 32) -> MXFP4 blocks
// {e, qs[16]} with qs[j] = code[j] | code[j + 16] << 4: the same values, no rounding.
void repack_mxfp4(const WeightMatrix& m, std::vector<uint8_t>& out) {
  const int64_t blocks = m.cols / 32;
  const size_t base = out.size();
  out.resize(base + static_cast<size_t>(m.rows * blocks * 17));
  uint8_t* dst = out.data() + base;
  for (int64_t r = 0; r < m.rows; ++r) {
    const uint8_t* packed = m.data + r * (m.cols / 2);
    const uint8_t* scales = m.scale + r * blocks;
    for (int64_t b = 0; b < blocks; ++b, dst += 17) {
      uint8_t codes[32];
      for (int j = 0; j < 16; ++j) {
        codes[2 * j] = packed[b * 16 + j] & 0xF;
        codes[2 * j + 1] = packed[b * 16 + j] >> 4;
      }
      dst[0] = scales[b];
      for (int j = 0; j < 16; ++j) dst[1 + j] = static_cast<uint8_t>(codes[j] | (codes[j + 16] << 4));
    }
  }
}

GgufValue f32v(double v) { return gguf_f32(v); }

std::vector<std::pair<std::string, GgufValue>> metadata(const ModelConfig& c, const GgufVocab* vocab, bool mtp) {
  const std::string A = "deepseek4.";
  std::vector<std::pair<std::string, GgufValue>> kv = {
      {"general.architecture", gguf_str("deepseek4")},
      {"general.name", gguf_str(mtp ? "DeepSeek-V4 MTP (dsv4 convert)" : "DeepSeek-V4 (dsv4 convert)")},
      {A + "block_count", gguf_u32(c.n_layers)},
      {A + "context_length", gguf_u32(c.max_position_embeddings)},
      {A + "embedding_length", gguf_u32(c.dim)},
      {A + "vocab_size", gguf_u32(c.vocab_size)},
      {A + "attention.head_count", gguf_u32(c.n_heads)},
      {A + "attention.head_count_kv", gguf_u32(1)},
      {A + "attention.key_length", gguf_u32(c.head_dim)},
      {A + "attention.value_length", gguf_u32(c.head_dim)},
      {A + "attention.q_lora_rank", gguf_u32(c.q_lora_rank)},
      {A + "attention.output_lora_rank", gguf_u32(c.o_lora_rank)},
      {A + "attention.output_group_count", gguf_u32(c.o_groups)},
      {A + "attention.indexer.head_count", gguf_u32(c.index_n_heads)},
      {A + "attention.indexer.key_length", gguf_u32(c.index_head_dim)},
      {A + "attention.indexer.top_k", gguf_u32(c.index_topk)},
      {A + "attention.compress_ratios", gguf_i32_array(c.compress_ratios)},
      {A + "attention.compress_rope_freq_base", f32v(c.compress_rope_theta)},
      {A + "attention.sliding_window", gguf_u32(c.window)},
      {A + "attention.layer_norm_rms_epsilon", f32v(c.norm_eps)},
      {A + "nextn_predict_layers", gguf_u32(c.n_mtp_layers)},
      {A + "hyper_connection.count", gguf_u32(c.hc_mult)},
      {A + "hyper_connection.sinkhorn_iterations", gguf_u32(c.hc_sinkhorn_iters)},
      {A + "hyper_connection.epsilon", f32v(c.hc_eps)},
      {A + "hash_layer_count", gguf_u32(c.n_hash_layers)},
      {A + "expert_feed_forward_length", gguf_u32(c.moe_inter_dim)},
      {A + "expert_shared_feed_forward_length", gguf_u32(c.moe_inter_dim * c.n_shared_experts)},
      {A + "expert_count", gguf_u32(c.n_routed_experts)},
      {A + "expert_used_count", gguf_u32(c.n_activated_experts)},
      {A + "expert_shared_count", gguf_u32(c.n_shared_experts)},
      {A + "expert_weights_scale", f32v(c.route_scale)},
      {A + "expert_weights_norm", gguf_bool(true)},
      {A + "expert_gating_func", gguf_u32(4)},
      {A + "rope.dimension_count", gguf_u32(c.rope_dim)},
      {A + "rope.freq_base", f32v(c.rope_theta)},
      {A + "dense_fp8", gguf_bool(true)},
  };
  if (c.swiglu_limit > 0) kv.push_back({A + "swiglu_clamp_exp", gguf_f32_array(std::vector<double>(static_cast<size_t>(c.n_layers), c.swiglu_limit))});
  if (c.original_seq_len > 0) {
    kv.push_back({A + "rope.scaling.type", gguf_str("yarn")});
    kv.push_back({A + "rope.scaling.factor", f32v(c.rope_factor)});
    kv.push_back({A + "rope.scaling.original_context_length", gguf_u32(c.original_seq_len)});
    kv.push_back({A + "rope.scaling.yarn_beta_fast", f32v(c.beta_fast)});
    kv.push_back({A + "rope.scaling.yarn_beta_slow", f32v(c.beta_slow)});
  }
  kv.push_back({"tokenizer.ggml.bos_token_id", gguf_u32(c.bos_token_id)});
  kv.push_back({"tokenizer.ggml.eos_token_id", gguf_u32(c.eos_token_id)});
  if (vocab) {
    kv.push_back({"tokenizer.ggml.model", gguf_str("gpt2")});
    kv.push_back({"tokenizer.ggml.pre", gguf_str(vocab->pre)});
    kv.push_back({"tokenizer.ggml.tokens", gguf_str_array(vocab->tokens)});
    kv.push_back({"tokenizer.ggml.token_type", gguf_i32_array(vocab->types)});
    kv.push_back({"tokenizer.ggml.merges", gguf_str_array(vocab->merges)});
  }
  return kv;
}

// Writes one file atomically and checks it back; returns its size.
int64_t write_file(const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& kv, const std::vector<Plan>& plans,
                   const std::function<void(int64_t)>& advance) {
  std::vector<GgufTensorInfo> infos;
  for (const Plan& p : plans) infos.push_back(p.info);
  const std::string header = serialize_gguf_header(kv, infos);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error(tmp + ": cannot create");
  auto put = [&](const void* data, size_t n) {
    if (n && std::fwrite(data, 1, n, f) != n) {
      std::fclose(f);
      std::remove(tmp.c_str());
      throw Error(tmp + ": write failed (disk full?)");
    }
  };
  int64_t size = static_cast<int64_t>(header.size());
  put(header.data(), header.size());
  std::vector<uint64_t> hashes;
  std::vector<uint8_t> bytes;
  static const char zeros[32] = {};
  try {
    for (const Plan& p : plans) {
      bytes.clear();
      p.produce(bytes);
      if (static_cast<int64_t>(bytes.size()) != p.info.nbytes)
        throw Error("convert: tensor " + p.info.name + " produced " + std::to_string(bytes.size()) + " bytes, expected " + std::to_string(p.info.nbytes));
      hashes.push_back(fnv1a(bytes.data(), bytes.size()));
      put(bytes.data(), bytes.size());
      const size_t pad = (32 - bytes.size() % 32) % 32;
      put(zeros, pad);
      size += static_cast<int64_t>(bytes.size() + pad);
      if (advance) advance(p.info.nbytes);
    }
  } catch (...) {
    std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
  if (std::fflush(f) != 0 || ::fsync(::fileno(f)) != 0) {
    std::fclose(f);
    std::remove(tmp.c_str());
    throw Error(tmp + ": flush failed");
  }
  std::fclose(f);
  // Read-back check before the file takes its name: every tensor's bytes as written.
  try {
    const GgufFile back = GgufFile::open(tmp);
    if (back.tensors().size() != plans.size()) throw Error(tmp + ": read back " + std::to_string(back.tensors().size()) + " tensors");
    for (size_t i = 0; i < plans.size(); ++i) {
      const GgufTensor* t = back.find_tensor(plans[i].info.name);
      if (!t || t->type != plans[i].info.type || t->ne != plans[i].info.ne || t->nbytes != plans[i].info.nbytes ||
          fnv1a(t->data, static_cast<size_t>(t->nbytes)) != hashes[i])
        throw Error(tmp + ": tensor " + plans[i].info.name + " differs when read back");
    }
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(path + ": cannot rename the temp file into place");
  }
  return size;
}

}  // namespace

GgmlType parse_ggml_type(const std::string& name) {
  std::string lower;
  for (char ch : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  for (uint32_t id = 0; id < 64; ++id) {
    const auto info = ggml_type_info(id);
    if (!info) continue;
    std::string n = info->name;
    for (char& ch : n) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (n == lower) return static_cast<GgmlType>(id);
  }
  throw Error("unknown ggml type '" + name + "'");
}

GgufConvertReport convert_to_gguf(const ModelWeights& w, const GgufVocab& vocab, const std::string& out, const GgufConvertOptions& o,
                                  const std::function<void(int64_t, int64_t)>& progress) {
  const ModelConfig& c = w.config;
  const TensorStore& store = *w.store;
  std::vector<std::pair<std::regex, GgmlType>> overrides;
  for (const auto& [pat, type] : o.overrides) {
    try {
      overrides.push_back({std::regex(pat), type});
    } catch (const std::regex_error& e) {
      throw Error("--tensor-type " + pat + ": bad pattern (" + e.what() + ")");
    }
  }
  auto choose = [&](const std::string& gname, GgmlType fallback) {
    for (const auto& [re, type] : overrides)
      if (std::regex_search(gname, re)) return type;
    return fallback;
  };
  auto check_target = [&](const std::string& gname, GgmlType type, int64_t cols, bool fp4_source) {
    if (type == GgmlType::MXFP4) {
      if (!fp4_source) throw Error("convert: tensor " + gname + ": mxfp4 is only written from FP4 experts (repacked bit-exactly)");
    } else if (!ggml_quantizable(type)) {
      throw Error("convert: tensor " + gname + ": type " + ggml_type_name(static_cast<uint32_t>(type)) +
                  " is not a convert target (f32, f16, bf16, q8_0, q4_K, q2_K, mxfp4 for FP4 experts)");
    }
    const int64_t block = ggml_type_info(static_cast<uint32_t>(type))->block;
    if (cols % block != 0)
      throw Error("convert: tensor " + gname + " has rows of " + std::to_string(cols) + " values, not a multiple of the " +
                  ggml_type_name(static_cast<uint32_t>(type)) + " block " + std::to_string(block));
  };

  std::vector<Plan> main_plans, mtp_plans;
  for (const TensorSpec& s : expected_tensors(c)) {
    int64_t expert = -1;
    const std::string gname = gguf_tensor_name(s.name, &expert);
    if (gname.empty() || expert > 0) continue;  // scales ride with their weights; experts stack at 0
    const bool is_mtp = s.name.compare(0, 4, "mtp.") == 0;
    if (is_mtp && o.mtp_out.empty()) continue;
    std::vector<Plan>& plans = is_mtp ? mtp_plans : main_plans;
    Plan p;
    p.info.name = gname;
    std::vector<int64_t> logical = s.shape;
    if (s.dtype == DType::I8) logical.back() *= 2;
    p.info.ne.assign(logical.rbegin(), logical.rend());
    const bool matrix = s.dtype == DType::F8_E4M3 || s.dtype == DType::I8 || (s.dtype == DType::BF16 && s.shape.size() == 2) ||
                        (s.dtype == DType::F32 && s.shape.size() == 2);
    if (expert == 0) {
      const bool fp4 = s.dtype == DType::I8;
      p.info.type = choose(gname, o.expert_type);
      check_target(gname, p.info.type, logical[1], fp4);
      p.info.ne.push_back(c.n_routed_experts);
      p.info.nbytes = ggml_row_bytes(p.info.type, logical[1]) * logical[0] * c.n_routed_experts;
      const std::string stem = s.name.substr(0, s.name.find(".experts.") + 9), leaf = s.name.substr(s.name.find(".w"));
      const GgmlType type = p.info.type;
      const int64_t rows = logical[0], cols = logical[1], E = c.n_routed_experts, block = c.weight_block;
      p.produce = [&store, stem, leaf, type, rows, cols, E, block](std::vector<uint8_t>& out) {
        for (int64_t e = 0; e < E; ++e) {
          const WeightMatrix m = source_matrix(store, stem + std::to_string(e) + leaf, rows, cols, block);
          if (type == GgmlType::MXFP4) repack_mxfp4(m, out);
          else encode_rows(m, type, out);
        }
      };
    } else if (matrix) {
      // 2-D: dense weights follow --type, except the F32 mHC / ape parameters (kept F32, lossless).
      p.info.type = choose(gname, s.dtype == DType::F32 ? GgmlType::F32 : o.dense_type);
      check_target(gname, p.info.type, logical[1], false);
      p.info.nbytes = ggml_row_bytes(p.info.type, logical[1]) * logical[0];
      const GgmlType type = p.info.type;
      const std::string name = s.name;
      const int64_t rows = logical[0], cols = logical[1], block = c.weight_block;
      p.produce = [&store, name, type, rows, cols, block](std::vector<uint8_t>& out) {
        encode_rows(source_matrix(store, name, rows, cols, block), type, out);
      };
    } else if (s.dtype == DType::I64) {  // tid2eid
      p.info.type = GgmlType::I32;
      p.info.nbytes = store.get(s.name).numel() * 4;
      const std::string name = s.name;
      p.produce = [&store, name](std::vector<uint8_t>& out) {
        for (int64_t v : store.read_i64(name)) {
          const int32_t x = static_cast<int32_t>(v);
          out.insert(out.end(), reinterpret_cast<const uint8_t*>(&x), reinterpret_cast<const uint8_t*>(&x) + 4);
        }
      };
    } else {  // 1-D: F32 (norms from BF16, exactly)
      p.info.type = GgmlType::F32;
      const Tensor& t = store.get(s.name);
      p.info.nbytes = t.numel() * 4;
      const std::string name = s.name;
      p.produce = [&store, name](std::vector<uint8_t>& out) {
        const Tensor& t = store.get(name);
        for (int64_t i = 0; i < t.numel(); ++i) {
          float v;
          if (t.dtype == DType::F32) {
            std::memcpy(&v, t.data + 4 * i, 4);
          } else {
            uint16_t b;
            std::memcpy(&b, t.data + 2 * i, 2);
            v = bf16_to_f32(b);
          }
          out.insert(out.end(), reinterpret_cast<const uint8_t*>(&v), reinterpret_cast<const uint8_t*>(&v) + 4);
        }
      };
    }
    plans.push_back(std::move(p));
  }
  int64_t total = 0, done = 0;
  for (const Plan& p : main_plans) total += p.info.nbytes;
  for (const Plan& p : mtp_plans) total += p.info.nbytes;
  auto advance = [&](int64_t n) {
    done += n;
    if (progress) progress(done, total);
  };
  GgufConvertReport r;
  r.tensors = static_cast<int64_t>(main_plans.size());
  r.bytes = write_file(out, metadata(c, &vocab, false), main_plans, advance);
  if (!mtp_plans.empty()) {
    ModelConfig mc = c;
    r.mtp_tensors = static_cast<int64_t>(mtp_plans.size());
    r.mtp_bytes = write_file(o.mtp_out, metadata(mc, nullptr, true), mtp_plans, advance);
  }
  // The result must load as a model (with its sidecar).
  load_gguf_model(out, mtp_plans.empty() ? std::string() : o.mtp_out);
  return r;
}

}  // namespace dsv4
