#include "model/init.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <exception>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "base/error.h"
#include "base/random.h"
#include "base/file.h"

namespace dsv4 {

namespace fs = std::filesystem;
using nlohmann::json;

// ------------------------------------------------------------------------------------------
// Scalar encoders
// ------------------------------------------------------------------------------------------
namespace init_codec {

uint16_t f32_to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x007FFFFFu)) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  // Round to nearest even: add half an ulp of the kept part, plus 1 when the kept lsb is odd.
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

uint8_t f32_to_e4m3(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  const uint8_t sign = (u >> 31) ? 0x80 : 0x00;
  u &= 0x7FFFFFFFu;
  if (u > 0x7F800000u) return 0x7F;     // NaN
  if (u >= 0x43E00000u) return sign | 0x7E;  // |x| >= 448: saturate (the release never stores NaN)
  if (u < 0x3C800000u) {
    // Below the smallest normal 2^-6 the grid is uniform with step 2^-9 (subnormals): a * 512
    // is exact and < 8, and rint rounds ties to even. The result 8 is the smallest normal,
    // whose code is also 8.
    float a;
    std::memcpy(&a, &u, 4);
    return sign | static_cast<uint8_t>(std::nearbyint(a * 512.0f));
  }
  // Normal: keep 3 of the 23 mantissa bits, rounding the 20 dropped bits to nearest even.
  int e = static_cast<int>(u >> 23) - 127;
  uint32_t q = (u >> 20) & 7u;
  const uint32_t rest = u & 0xFFFFFu;
  if (rest > 0x80000u || (rest == 0x80000u && (q & 1u))) ++q;
  if (q == 8) {  // rounded up to the next power of two
    q = 0;
    ++e;
  }
  const uint32_t code = (static_cast<uint32_t>(e + 7) << 3) | q;
  return sign | static_cast<uint8_t>(code > 0x7E ? 0x7E : code);
}

uint8_t f32_to_e2m1(float x) {
  if (std::isnan(x)) return 0x7;  // no NaN in E2M1: saturate (never produced by the generator)
  const uint8_t sign = std::signbit(x) ? 0x8 : 0x0;
  const float a = std::fabs(x);
  // Grid 0, 0.5, 1, 1.5, 2, 3, 4, 6 (codes 0..7). Midpoints decide; at an exact midpoint
  // the even code wins (round to nearest even on the code, which is the mantissa lsb).
  uint8_t c;
  if (a <= 0.25f) c = 0;
  else if (a < 0.75f) c = 1;
  else if (a <= 1.25f) c = 2;
  else if (a < 1.75f) c = 3;
  else if (a <= 2.5f) c = 4;
  else if (a < 3.5f) c = 5;
  else if (a <= 5.0f) c = 6;
  else c = 7;
  return sign | c;
}

int scale_exponent(float amax, float max_code) {
  if (!(amax > 0.0f)) return 0;
  const float s = amax / max_code;
  int k;
  const float m = std::frexp(s, &k);  // s = m * 2^k, m in [0.5, 1)
  return m == 0.5f ? k - 1 : k;       // smallest e with 2^e >= s
}

// 2^k as a float for normal exponents (k in [-126, 127]), else 0 (callers fall back to ldexp).
static float pow2(int k) {
  if (k < -126 || k > 127) return 0.0f;
  const uint32_t u = static_cast<uint32_t>(k + 127) << 23;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// x * 2^k, exact unless the result leaves the normal range (then ldexp rounds correctly).
static float scale_by(float x, float pow2k, int k) {
  const float y = x * pow2k;
  if (pow2k != 0.0f && (y == 0.0f ? x == 0.0f : std::fabs(y) >= 1.17549435e-38f) && std::isfinite(y)) return y;
  return std::ldexp(x, k);
}

// E8M0 code of the scale 2^e (saturating; 0xFF would be NaN).
static uint8_t e8m0_code(int e) { return static_cast<uint8_t>(std::clamp(e + 127, 0, 254)); }

void quantize_fp8(const float* x, int64_t rows, int64_t cols, int64_t block, uint8_t* codes, uint8_t* scales) {
  const int64_t sb = (cols + block - 1) / block;
  for (int64_t r0 = 0; r0 < rows; r0 += block) {
    const int64_t nr = std::min(block, rows - r0);
    for (int64_t c0 = 0; c0 < cols; c0 += block) {
      const int64_t nc = std::min(block, cols - c0);
      float amax = 0.0f;
      for (int64_t r = r0; r < r0 + nr; ++r)
        for (int64_t c = c0; c < c0 + nc; ++c) amax = std::max(amax, std::fabs(x[r * cols + c]));
      const int e = scale_exponent(amax, 448.0f);
      scales[(r0 / block) * sb + c0 / block] = e8m0_code(e);
      // Scaling by a power of two is exact, so the only rounding is the E4M3 one.
      const float inv = pow2(-e);
      for (int64_t r = r0; r < r0 + nr; ++r)
        for (int64_t c = c0; c < c0 + nc; ++c) codes[r * cols + c] = f32_to_e4m3(scale_by(x[r * cols + c], inv, -e));
    }
  }
}

void quantize_fp4_row(const float* x, int64_t cols, uint8_t* packed, uint8_t* scales) {
  for (int64_t g = 0; g < cols / 32; ++g) {
    const float* v = x + g * 32;
    float amax = 0.0f;
    for (int k = 0; k < 32; ++k) amax = std::max(amax, std::fabs(v[k]));
    const int e = scale_exponent(amax, 6.0f);
    scales[g] = e8m0_code(e);
    const float inv = pow2(-e);
    for (int k = 0; k < 32; k += 2) {
      const uint8_t lo = f32_to_e2m1(scale_by(v[k], inv, -e));      // even column: low nibble
      const uint8_t hi = f32_to_e2m1(scale_by(v[k + 1], inv, -e));  // odd column: high nibble
      packed[(g * 32 + k) / 2] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

}  // namespace init_codec

namespace {

// ------------------------------------------------------------------------------------------
// Random numbers (own generators: identical streams on every platform)
// ------------------------------------------------------------------------------------------
uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char ch : s) {
    h ^= ch;
    h *= 0x100000001B3ull;
  }
  return h;
}

// Float draws on top of the shared xoshiro256** stream (base/random.h).
class Rng {
 public:
  explicit Rng(uint64_t seed) : x_(seed) {}
  uint64_t next() { return x_.next(); }
  // Uniform in [0, 1) on a 2^-24 grid (exact in float).
  float uniform() { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f); }
  float uniform(float lo, float hi) { return lo + (hi - lo) * uniform(); }
  // Approximately standard normal: the centred sum of four 16-bit uniforms (Irwin-Hall, n=4),
  // scaled to unit variance. Support +-3.46; kurtosis 2.6 instead of 3. Chosen over Box-Muller
  // because it needs no log/cos (whose last bits differ between math libraries) and is fast
  // enough for the billions of expert weights of the large presets.
  float normal() {
    const uint64_t r = next();
    const int32_t sum = static_cast<int32_t>((r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48));
    // Each field k in [0, 65535] stands for (k + 0.5) / 65536; the four means add up to 2.
    constexpr float kScale = 1.7320508075688772f / 65536.0f;  // sqrt(12 / 4) per unit of 1/65536
    return static_cast<float>(sum - 131070) * kScale;
  }
  // Uniform integer in [0, n) (n small: the modulo bias is below 2^-40).
  uint64_t below(uint64_t n) { return (next() >> 11) % n; }

 private:
  Xoshiro256 x_;
};

// ------------------------------------------------------------------------------------------
// Generation
// ------------------------------------------------------------------------------------------
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// Linear weights ~ N(0, 1/fan_in): outputs keep the RMS of their (normalised) inputs.
float linear_std(int64_t fan_in) { return 1.0f / std::sqrt(static_cast<float>(fan_in)); }

// FP8 E4M3 weight [out, in] with E8M0 scales per block x block tile, generated in strips of
// `block` rows (bounded memory), quantised tile by tile.
void gen_fp8(const TensorSpec& ws, const TensorSpec& ss, int64_t block, Rng& rng, TensorData& w, TensorData& s) {
  const int64_t out = ws.shape[0], in = ws.shape[1];
  const int64_t sb = ss.shape[1];
  const float sd = linear_std(in);
  w.bytes.resize(static_cast<size_t>(out * in));
  s.bytes.resize(static_cast<size_t>(numel(ss.shape)));
  std::vector<float> strip(static_cast<size_t>(block * in));
  for (int64_t r0 = 0; r0 < out; r0 += block) {
    const int64_t rows = std::min(block, out - r0);
    for (int64_t i = 0; i < rows * in; ++i) strip[static_cast<size_t>(i)] = rng.normal() * sd;
    init_codec::quantize_fp8(strip.data(), rows, in, block, w.bytes.data() + r0 * in, s.bytes.data() + (r0 / block) * sb);
  }
}

// Packed FP4 E2M1 weight: stored [out, in/2], E8M0 scale [out, in/32], generated row by row.
void gen_fp4(const TensorSpec& ws, Rng& rng, TensorData& w, TensorData& s) {
  const int64_t out = ws.shape[0], in = ws.shape[1] * 2;
  const float sd = linear_std(in);
  w.bytes.resize(static_cast<size_t>(out * in / 2));
  s.bytes.resize(static_cast<size_t>(out * in / 32));
  std::vector<float> row(static_cast<size_t>(in));
  for (int64_t r = 0; r < out; ++r) {
    for (int64_t c = 0; c < in; ++c) row[static_cast<size_t>(c)] = rng.normal() * sd;
    init_codec::quantize_fp4_row(row.data(), in, w.bytes.data() + r * (in / 2), s.bytes.data() + r * (in / 32));
  }
}

void put_bf16(TensorData& t, size_t i, float v) {
  const uint16_t b = init_codec::f32_to_bf16(v);
  std::memcpy(t.bytes.data() + 2 * i, &b, 2);
}
void put_f32(TensorData& t, size_t i, float v) { std::memcpy(t.bytes.data() + 4 * i, &v, 4); }

void gen_bf16(const ModelConfig& c, const TensorSpec& sp, Rng& rng, TensorData& t) {
  const int64_t n = numel(sp.shape);
  t.bytes.resize(static_cast<size_t>(n) * 2);
  if (ends_with(sp.name, "norm.weight")) {
    // RMSNorm gains near 1 (a little spread so that a wrong gain index shows in tests).
    for (int64_t i = 0; i < n; ++i) put_bf16(t, static_cast<size_t>(i), 1.0f + 0.1f * rng.normal());
    return;
  }
  float sd;
  if (sp.name == "embed.weight") sd = 1.0f;  // O(1) streams from the start
  else if (sp.name == "head.weight") sd = 2.0f * linear_std(c.dim);  // logits std ~2 on unit-RMS input
  else sd = linear_std(sp.shape.back());     // gate, compressor wkv/wgate, indexer weights_proj
  for (int64_t i = 0; i < n; ++i) put_bf16(t, static_cast<size_t>(i), rng.normal() * sd);
}

void gen_f32(const ModelConfig& c, const TensorSpec& sp, Rng& rng, TensorData& t) {
  const int64_t n = numel(sp.shape);
  t.bytes.resize(static_cast<size_t>(n) * 4);
  auto fill = [&](auto f) {
    for (int64_t i = 0; i < n; ++i) put_f32(t, static_cast<size_t>(i), f(i));
  };
  const std::string& nm = sp.name;
  if (ends_with(nm, "_fn")) {
    // mHC mixing projection phi [mix, hc*dim] on the RMS-normalised streams: mu = O(1), and
    // the gains below (hc_*_scale) keep its contribution small next to the static biases.
    const float sd = linear_std(sp.shape[1]);
    fill([&](int64_t) { return rng.normal() * sd; });
  } else if (ends_with(nm, "_scale")) {
    fill([&](int64_t) { return rng.uniform(0.05f, 0.15f); });
  } else if (ends_with(nm, "_base")) {
    // [pre(hc) | post(hc) | comb(hc x hc)] for the block sites, [pre(hc)] for the head.
    // pre ~ sigmoid(0) = 0.5, post ~ 2 sigmoid(0) = 1, comb logits +4 on the diagonal so that
    // the Sinkhorn-projected mixing stays close to the identity (each stream mostly keeps itself).
    const int64_t h = c.hc_mult;
    fill([&](int64_t i) {
      float v = 0.1f * rng.normal();
      if (i >= 2 * h) {
        const int64_t j = (i - 2 * h) / h, k = (i - 2 * h) % h;
        if (j == k) v += 4.0f;
      }
      return v;
    });
  } else if (ends_with(nm, "attn_sink")) {
    fill([&](int64_t) { return rng.uniform(0.5f, 2.5f); });
  } else if (ends_with(nm, ".ape")) {
    fill([&](int64_t) { return 0.1f * rng.normal(); });
  } else if (ends_with(nm, "gate.bias")) {
    fill([&](int64_t) { return 0.1f * rng.normal(); });
  } else {
    throw Error("dsv4 init: no initialisation rule for F32 tensor " + nm);
  }
}

void gen_tid2eid(const ModelConfig& c, const TensorSpec& sp, Rng& rng, TensorData& t) {
  const int64_t rows = sp.shape[0], k = sp.shape[1], n = c.n_routed_experts;
  t.bytes.resize(static_cast<size_t>(rows * k) * 8);
  std::vector<int64_t> perm(static_cast<size_t>(n));
  for (int64_t r = 0; r < rows; ++r) {
    // Partial Fisher-Yates: k distinct expert ids per token.
    for (int64_t i = 0; i < n; ++i) perm[static_cast<size_t>(i)] = i;
    for (int64_t i = 0; i < k; ++i) {
      const int64_t j = i + static_cast<int64_t>(rng.below(static_cast<uint64_t>(n - i)));
      std::swap(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(j)]);
    }
    std::memcpy(t.bytes.data() + static_cast<size_t>(r * k) * 8, perm.data(), static_cast<size_t>(k) * 8);
  }
}

// Weight + scale pairs form one unit (generated together and kept in the same shard).
std::vector<std::vector<TensorSpec>> make_units(const std::vector<TensorSpec>& specs) {
  std::vector<std::vector<TensorSpec>> units;
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec& s = specs[i];
    if ((s.dtype == DType::F8_E4M3 || s.dtype == DType::I8) && i + 1 < specs.size() && ends_with(s.name, ".weight") &&
        specs[i + 1].name == s.name.substr(0, s.name.size() - 7) + ".scale") {
      units.push_back({s, specs[i + 1]});
      ++i;
    } else {
      units.push_back({s});
    }
  }
  return units;
}

int64_t spec_bytes(const TensorSpec& s) { return numel(s.shape) * static_cast<int64_t>(dtype_size(s.dtype)); }

int64_t unit_bytes(const std::vector<TensorSpec>& u) {
  int64_t b = 0;
  for (const auto& s : u) b += spec_bytes(s);
  return b;
}

// ------------------------------------------------------------------------------------------
// Files
// ------------------------------------------------------------------------------------------
void write_all(int fd, const void* data, size_t n, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error(path + ": write failed: " + std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

// Generates units [begin, end) with `threads` workers and calls sink(i, tensors) in order.
// Work goes in batches of at most 2*threads units and ~1 GiB, bounding memory.
template <typename Sink>
void generate_in_order(const ModelConfig& c, const std::vector<std::vector<TensorSpec>>& units, size_t begin, size_t end,
                       uint64_t seed, int threads, Sink&& sink) {
  const size_t max_batch = static_cast<size_t>(std::max(1, threads)) * 2;
  size_t i = begin;
  while (i < end) {
    size_t j = i;
    int64_t bytes = 0;
    while (j < end && j - i < max_batch && (j == i || bytes + unit_bytes(units[j]) <= (int64_t{1} << 30))) {
      bytes += unit_bytes(units[j]);
      ++j;
    }
    std::vector<std::vector<TensorData>> out(j - i);
    if (threads <= 1 || j - i == 1) {
      for (size_t u = i; u < j; ++u) out[u - i] = generate_tensors(c, units[u], seed);
    } else {
      std::atomic<size_t> next{i};
      std::vector<std::exception_ptr> errors(static_cast<size_t>(threads));
      std::vector<std::thread> pool;
      for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
          try {
            for (size_t u; (u = next.fetch_add(1)) < j;) out[u - i] = generate_tensors(c, units[u], seed);
          } catch (...) {
            errors[static_cast<size_t>(t)] = std::current_exception();
            next.store(j);
          }
        });
      }
      for (auto& th : pool) th.join();
      for (auto& e : errors)
        if (e) std::rethrow_exception(e);
    }
    for (size_t u = i; u < j; ++u) sink(u, out[u - i]);
    i = j;
  }
}

// One safetensors shard, written to a temp file tensor by tensor, fsync'ed and renamed into
// place: a reader never sees a partial shard.
void write_shard(const ModelConfig& c, const std::string& path, const std::vector<std::vector<TensorSpec>>& units,
                 size_t begin, size_t end, uint64_t seed, int threads) {
  json header = json::object();
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t off = 0;
  for (size_t u = begin; u < end; ++u)
    for (const auto& s : units[u]) {
      const uint64_t n = static_cast<uint64_t>(spec_bytes(s));
      header[s.name] = {{"dtype", std::string(dtype_name(s.dtype))}, {"shape", s.shape}, {"data_offsets", {off, off + n}}};
      off += n;
    }
  std::string h = header.dump();
  while (h.size() % 8 != 0) h.push_back(' ');  // 8-byte aligned data section
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(path + ": cannot create temp file: " + std::strerror(errno));
  try {
    const uint64_t hl = h.size();
    write_all(fd, &hl, 8, path);
    write_all(fd, h.data(), h.size(), path);
    generate_in_order(c, units, begin, end, seed, threads, [&](size_t u, const std::vector<TensorData>& ts) {
      for (size_t k = 0; k < ts.size(); ++k) {
        if (static_cast<int64_t>(ts[k].bytes.size()) != spec_bytes(units[u][k]))
          throw Error("dsv4 init: internal error: tensor " + ts[k].name + " has the wrong size");
        write_all(fd, ts[k].bytes.data(), ts[k].bytes.size(), path);
      }
    });
    if (::fsync(fd) != 0) throw Error(path + ": fsync failed: " + std::strerror(errno));
    if (::close(fd) != 0) {
      fd = -1;
      throw Error(path + ": close failed: " + std::strerror(errno));
    }
    fd = -1;
    if (::rename(tmp.c_str(), path.c_str()) != 0) throw Error(path + ": cannot rename temp file: " + std::strerror(errno));
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
}

std::string shard_name(size_t i, size_t n) {
  if (n == 1) return "model.safetensors";
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, n);
  return buf;
}

// ------------------------------------------------------------------------------------------
// Presets
// ------------------------------------------------------------------------------------------
// The constants every preset shares with the release (RoPE / YaRN, mHC, routing, formats,
// special ids): V4-Flash's, with each preset setting its own shapes.
ModelConfig base_config() { return official_config("flash"); }

ModelConfig tiny_config() {
  ModelConfig c = base_config();
  c.dim = 256;
  c.n_layers = 4;
  c.n_heads = 4;
  c.head_dim = 128;
  c.rope_dim = 64;
  c.q_lora_rank = 128;
  c.o_groups = 2;
  c.o_lora_rank = 64;
  c.window = 32;
  // SWA, CSA, a heavy ratio small enough that short test prompts produce compressed entries,
  // CSA again with learned routing; MTP (window only).
  c.compress_ratios = {0, 4, 16, 4, 0};
  // Long-context like every V4 model: Flash's 1M positions with Flash's YaRN settings
  // (base_config); the context only bounds a session, it reserves nothing.
  c.max_position_embeddings = 1048576;
  c.index_n_heads = 4;
  c.index_head_dim = 64;
  c.index_topk = 16;
  c.n_routed_experts = 8;
  c.n_activated_experts = 2;
  c.moe_inter_dim = 128;
  c.n_hash_layers = 2;
  return c;
}

// V4-Flash's structure (43 layers, [0,0] + [4,128]*20 + [4,0] ratios, 256 experts top-6,
// 3 hash layers, window 128, head_dim 512, rope 64, 128-dim indexer heads) at a quarter of
// Flash's width (dim 1024) with the attention kept relatively wide so that a token reads
// more than 1 GB of weights while the whole model stays near 6 GB.
ModelConfig flash_scaled_config() {
  ModelConfig c = base_config();
  c.dim = 1024;
  c.n_layers = 43;
  c.n_heads = 32;
  c.head_dim = 512;
  c.rope_dim = 64;
  c.q_lora_rank = 512;
  c.o_groups = 4;  // 8 heads per group as in Flash
  c.o_lora_rank = 256;
  // window 128 and the compress_ratios of Flash (base_config).
  c.max_position_embeddings = 65536;
  c.index_n_heads = 32;
  c.moe_inter_dim = 256;  // index_head_dim, index_topk, experts, hash layers: Flash's
  return c;
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Public API
// ------------------------------------------------------------------------------------------
std::vector<TensorData> generate_tensors(const ModelConfig& c, const std::vector<TensorSpec>& unit, uint64_t seed) {
  if (unit.empty()) return {};
  const TensorSpec& s0 = unit[0];
  // One stream per unit, keyed by the weight's name: the bytes of a tensor depend only on
  // (seed, name, shape), not on generation order, threads or sharding.
  uint64_t st = seed ^ fnv1a64(s0.name);
  Rng rng(splitmix64(st));
  std::vector<TensorData> out;
  for (const auto& s : unit) out.push_back(TensorData{s.name, s.dtype, s.shape, {}});
  if (unit.size() == 2 && s0.dtype == DType::F8_E4M3) {
    gen_fp8(s0, unit[1], c.weight_block, rng, out[0], out[1]);
  } else if (unit.size() == 2 && s0.dtype == DType::I8) {
    gen_fp4(s0, rng, out[0], out[1]);
  } else if (unit.size() == 1 && s0.dtype == DType::BF16) {
    gen_bf16(c, s0, rng, out[0]);
  } else if (unit.size() == 1 && s0.dtype == DType::F32) {
    gen_f32(c, s0, rng, out[0]);
  } else if (unit.size() == 1 && s0.dtype == DType::I64 && ends_with(s0.name, "tid2eid")) {
    gen_tid2eid(c, s0, rng, out[0]);
  } else {
    throw Error("dsv4 init: no initialisation rule for tensor " + s0.name + " (" + std::string(dtype_name(s0.dtype)) + ")");
  }
  return out;
}

const std::vector<InitPreset>& init_presets() {
  static const std::vector<InitPreset> presets = {
      {"tiny", "dim 256, 4 layers (ratios 0,4,16,4) + MTP, 8 experts top-2, hash layers 2, full 129280 vocab; "
               "73M params, 142 MB"},
      {"flash-scaled",
       "V4-Flash structure (43 layers [0,0]+[4,128]*20+[4,0], 256 experts top-6, 3 hash layers) at dim 1024; "
       "9.9B params, 6.2 GB, 1.3 GB of weights read per token"},
  };
  return presets;
}

ModelConfig init_preset_config(const std::string& name) {
  if (name == "tiny") return tiny_config();
  if (name == "flash-scaled") return flash_scaled_config();
  std::string known;
  for (const auto& p : init_presets()) known += (known.empty() ? "" : ", ") + p.name;
  throw Error("unknown preset '" + name + "' (known: " + known + ")");
}

std::string config_to_hf_json(const ModelConfig& c) {
  json j = json::object();
  j["architectures"] = {"DeepseekV4ForCausalLM"};
  j["model_type"] = "deepseek_v4";
  j["attention_bias"] = false;
  j["attention_dropout"] = 0.0;
  j["bos_token_id"] = c.bos_token_id;
  j["eos_token_id"] = c.eos_token_id;
  j["expert_dtype"] = c.expert_format == ExpertFormat::kFp4 ? "fp4" : "fp8";
  j["hc_eps"] = c.hc_eps;
  j["hc_mult"] = c.hc_mult;
  j["hc_sinkhorn_iters"] = c.hc_sinkhorn_iters;
  j["head_dim"] = c.head_dim;
  j["hidden_act"] = "silu";
  j["hidden_size"] = c.dim;
  j["index_head_dim"] = c.index_head_dim;
  j["index_n_heads"] = c.index_n_heads;
  j["index_topk"] = c.index_topk;
  j["initializer_range"] = 0.02;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["moe_intermediate_size"] = c.moe_inter_dim;
  j["n_routed_experts"] = c.n_routed_experts;
  j["n_shared_experts"] = c.n_shared_experts;
  j["norm_topk_prob"] = true;
  j["num_attention_heads"] = c.n_heads;
  j["num_experts_per_tok"] = c.n_activated_experts;
  j["num_hidden_layers"] = c.n_layers;
  j["num_hash_layers"] = c.n_hash_layers;
  j["num_key_value_heads"] = 1;
  j["num_nextn_predict_layers"] = c.n_mtp_layers;
  j["o_groups"] = c.o_groups;
  j["o_lora_rank"] = c.o_lora_rank;
  j["q_lora_rank"] = c.q_lora_rank;
  j["qk_rope_head_dim"] = c.rope_dim;
  j["quantization_config"] = {{"activation_scheme", "dynamic"},
                              {"fmt", "e4m3"},
                              {"quant_method", "fp8"},
                              {"scale_fmt", "ue8m0"},
                              {"weight_block_size", {c.weight_block, c.weight_block}}};
  j["rms_norm_eps"] = c.norm_eps;
  j["rope_scaling"] = {{"beta_fast", c.beta_fast},
                       {"beta_slow", c.beta_slow},
                       {"factor", c.rope_factor},
                       {"original_max_position_embeddings", c.original_seq_len},
                       {"type", "yarn"}};
  j["rope_theta"] = c.rope_theta;
  j["routed_scaling_factor"] = c.route_scale;
  j["scoring_func"] = "sqrtsoftplus";
  j["sliding_window"] = c.window;
  j["swiglu_limit"] = c.swiglu_limit;
  j["tie_word_embeddings"] = false;
  j["topk_method"] = "noaux_tc";
  j["torch_dtype"] = "bfloat16";
  j["use_cache"] = true;
  j["vocab_size"] = c.vocab_size;
  j["compress_rope_theta"] = c.compress_rope_theta;
  j["compress_ratios"] = c.compress_ratios;
  return j.dump(2) + "\n";
}

ModelSizes model_sizes(const ModelConfig& c) {
  ModelSizes z;
  for (const TensorSpec& s : expected_tensors(c)) {
    const int64_t n = numel(s.shape);
    const int64_t b = spec_bytes(s);
    const bool is_scale = ends_with(s.name, ".scale");
    // Parameters as the spec (1.4) counts them: FP4 one per value; scales and the I64
    // hash-routing tables are not parameters.
    const int64_t p = is_scale || s.dtype == DType::I64 ? 0 : (s.dtype == DType::I8 ? 2 * n : n);
    ++z.tensors;
    z.params += p;
    z.bytes += b;
    switch (tensor_use(s.name)) {
      case TensorUse::kMtp:
        z.mtp_bytes += b;
        break;
      case TensorUse::kRoutedExpert:
        // Each token runs n_activated of the n_routed routed experts (all expert tensors of a
        // layer have the same size, so the fraction is exact).
        z.active_params += p * c.n_activated_experts / c.n_routed_experts;
        z.active_bytes += b * c.n_activated_experts / c.n_routed_experts;
        break;
      case TensorUse::kOneRow:
        z.active_params += p / s.shape[0];  // one row per token
        z.active_bytes += b / s.shape[0];
        break;
      case TensorUse::kAll:
        z.active_params += p;
        z.active_bytes += b;
        break;
    }
  }
  return z;
}

std::string gunzip_file(const std::string& path) {
  // Whole-buffer inflate (the asset is a few MB) so that a truncated or corrupt stream is an
  // error: gzread would pass non-gzip input through and stop quietly at a premature end.
  const std::string in = read_file(path);
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) throw Error(path + ": zlib init failed");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  std::string out;
  char buf[1 << 16];
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf, sizeof buf - zs.avail_out);
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) break;  // input ended before the stream did
  }
  const bool trailing = zs.avail_in != 0;
  const std::string msg = zs.msg ? zs.msg : "truncated stream";
  inflateEnd(&zs);
  if (rc != Z_STREAM_END) throw Error(path + ": not a valid gzip file: " + msg);
  if (trailing) throw Error(path + ": trailing bytes after the gzip stream");
  return out;
}

InitResult write_random_model(const ModelConfig& c, const std::string& dir, const InitOptions& opt) {
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec)) throw Error(dir + ": exists and is not a directory");
    if (!fs::is_empty(dir, ec) && !opt.force) throw Error(dir + ": directory is not empty (use --force to overwrite)");
  } else {
    fs::create_directories(dir, ec);
    if (ec) throw Error(dir + ": cannot create directory: " + ec.message());
  }
  if (opt.shard_bytes <= 0) throw Error("shard size must be positive");
  // Read the tokenizer first: a bad asset path fails before minutes of weight generation.
  std::string tokenizer;
  if (!opt.tokenizer_gz.empty()) tokenizer = gunzip_file(opt.tokenizer_gz);

  InitResult res;
  res.sizes = model_sizes(c);
  const std::vector<std::vector<TensorSpec>> units = make_units(expected_tensors(c));

  // Greedy shard plan in layout order; a unit never straddles two shards. The limit applies
  // to the whole file: data plus a bound on each tensor's header entry
  // ("name":{"dtype":"F8_E4M3","shape":[a,b],"data_offsets":[x,y]} is under name + 96 bytes).
  std::vector<std::pair<size_t, size_t>> shards;
  constexpr int64_t kFileOverhead = 64;  // length prefix, metadata, braces, alignment padding
  size_t start = 0;
  int64_t acc = kFileOverhead;
  for (size_t u = 0; u < units.size(); ++u) {
    int64_t b = unit_bytes(units[u]);
    for (const auto& sp : units[u]) b += static_cast<int64_t>(sp.name.size()) + 96;
    if (u > start && acc + b > opt.shard_bytes) {
      shards.push_back({start, u});
      start = u;
      acc = kFileOverhead;
    }
    acc += b;
  }
  shards.push_back({start, units.size()});

  const std::string base = dir.empty() || dir.back() == '/' ? dir : dir + "/";
  json weight_map = json::object();
  std::set<std::string> written;
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string name = shard_name(i, shards.size());
    write_shard(c, base + name, units, shards[i].first, shards[i].second, opt.seed, opt.threads);
    for (size_t u = shards[i].first; u < shards[i].second; ++u)
      for (const auto& s : units[u]) weight_map[s.name] = name;
    res.files.push_back(name);
    written.insert(name);
  }
  const std::string index_path = base + "model.safetensors.index.json";
  if (shards.size() > 1) {
    json index = {{"metadata", {{"total_size", res.sizes.bytes}}}, {"weight_map", weight_map}};
    write_file_atomic(index_path, index.dump(2) + "\n");
    res.files.push_back("model.safetensors.index.json");
  } else if (file_exists(index_path)) {
    fs::remove(index_path, ec);  // stale index of an earlier, sharded model (--force)
  }
  // With --force, shards of an earlier model with another shard count would otherwise be
  // picked up by a loader that globs *.safetensors.
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string f = e.path().filename().string();
    if (e.is_regular_file() && ends_with(f, ".safetensors") && !written.count(f)) fs::remove(e.path(), ec);
  }
  write_file_atomic(base + "config.json", config_to_hf_json(c));
  res.files.push_back("config.json");
  if (!tokenizer.empty()) {
    write_file_atomic(base + "tokenizer.json", tokenizer);
    res.files.push_back("tokenizer.json");
  }
  return res;
}

}  // namespace dsv4
