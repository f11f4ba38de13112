#include "model/state.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "base/error.h"
#include "ops/formats.h"

namespace dsv4 {

namespace {

constexpr int64_t kFp8Block = 64, kFp4Block = 32;

// 2^(b - 127) for a UE8M0 byte b (255 is NaN in the format; never written here).
const float* e8m0_table() {
  static const float* t = [] {
    static float v[256];
    for (int b = 0; b < 256; ++b) v[b] = std::ldexp(1.0f, b - 127);
    return v;
  }();
  return t;
}
const float* e4m3_table() {
  static const float* t = [] {
    static float v[256];
    for (int b = 0; b < 256; ++b) v[b] = e4m3_to_f32(static_cast<uint8_t>(b));
    return v;
  }();
  return t;
}
const float* e2m1_table() {
  static const float* t = [] {
    static float v[16];
    for (int b = 0; b < 16; ++b) v[b] = e2m1_to_f32(static_cast<uint8_t>(b));
    return v;
  }();
  return t;
}

// Smallest e with amax <= max_code * 2^e (0 for amax == 0), clamped to the UE8M0 range.
int scale_exp(float amax, double max_code) {
  if (!(amax > 0.0f)) return 0;
  int e = static_cast<int>(std::ceil(std::log2(static_cast<double>(amax) / max_code)));
  while (std::ldexp(max_code, e) < amax) ++e;
  while (std::ldexp(max_code, e - 1) >= amax) --e;
  return std::clamp(e, -127, 127);
}

float block_amax(const float* x, int64_t n) {
  float m = 0.0f;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}

}  // namespace

int64_t kv_entry_bytes(KvFormat f, int64_t d, int64_t rope_dim) {
  switch (f) {
    case KvFormat::kF32:
      return d * 4;
    case KvFormat::kMainFp8: {
      const int64_t nope = d - rope_dim;
      const int64_t raw = nope + 2 * rope_dim + (nope + kFp8Block - 1) / kFp8Block;
      return (raw + 7) / 8 * 8;
    }
    case KvFormat::kIdxFp4:
      return d / 2 + (d + kFp4Block - 1) / kFp4Block;
  }
  return 0;
}

void kv_decode(KvFormat f, int64_t d, int64_t rope_dim, const uint8_t* in, float* out) {
  if (f == KvFormat::kF32) {
    std::memcpy(out, in, static_cast<size_t>(d) * 4);
    return;
  }
  const float* sc = e8m0_table();
  if (f == KvFormat::kMainFp8) {
    const int64_t nope = d - rope_dim;
    const float* t = e4m3_table();
    const uint8_t* scales = in + nope + 2 * rope_dim;
    for (int64_t b = 0; b * kFp8Block < nope; ++b) {
      const float s = sc[scales[b]];
      const int64_t hi = std::min(nope, (b + 1) * kFp8Block);
      for (int64_t i = b * kFp8Block; i < hi; ++i) out[i] = t[in[i]] * s;
    }
    const uint8_t* r = in + nope;
    for (int64_t i = 0; i < rope_dim; ++i) {
      uint16_t bits;
      std::memcpy(&bits, r + 2 * i, 2);
      out[nope + i] = bf16_to_f32(bits);
    }
    return;
  }
  // kIdxFp4
  const float* t = e2m1_table();
  const uint8_t* scales = in + d / 2;
  for (int64_t b = 0; b * kFp4Block < d; ++b) {
    const float s = sc[scales[b]];
    const int64_t hi = std::min(d, (b + 1) * kFp4Block);
    for (int64_t i = b * kFp4Block; i < hi; ++i) {
      const uint8_t byte = in[i / 2];
      out[i] = t[(i & 1) ? (byte >> 4) : (byte & 0xF)] * s;
    }
  }
}

void kv_encode(KvFormat f, int64_t d, int64_t rope_dim, const float* x, uint8_t* out) {
  if (f == KvFormat::kF32) {
    std::memcpy(out, x, static_cast<size_t>(d) * 4);
    return;
  }
  if (f == KvFormat::kMainFp8) {
    const int64_t nope = d - rope_dim;
    uint8_t* scales = out + nope + 2 * rope_dim;
    for (int64_t b = 0; b * kFp8Block < nope; ++b) {
      const int64_t lo = b * kFp8Block, hi = std::min(nope, lo + kFp8Block);
      const int e = scale_exp(block_amax(x + lo, hi - lo), 448.0);
      scales[b] = static_cast<uint8_t>(e + 127);
      for (int64_t i = lo; i < hi; ++i) out[i] = f32_to_e4m3(std::ldexp(x[i], -e));
    }
    for (int64_t i = 0; i < rope_dim; ++i) {
      const uint16_t bits = f32_to_bf16(x[nope + i]);
      std::memcpy(out + nope + 2 * i, &bits, 2);
    }
    const int64_t used = nope + 2 * rope_dim + (nope + kFp8Block - 1) / kFp8Block;
    std::memset(out + used, 0, static_cast<size_t>(kv_entry_bytes(f, d, rope_dim) - used));
  } else {
    uint8_t* scales = out + d / 2;
    std::memset(out, 0, static_cast<size_t>(d / 2));
    for (int64_t b = 0; b * kFp4Block < d; ++b) {
      const int64_t lo = b * kFp4Block, hi = std::min(d, lo + kFp4Block);
      const int e = scale_exp(block_amax(x + lo, hi - lo), 6.0);
      scales[b] = static_cast<uint8_t>(e + 127);
      for (int64_t i = lo; i < hi; ++i) {
        const uint8_t code = f32_to_e2m1(std::ldexp(x[i], -e)) & 0xF;
        out[i / 2] = static_cast<uint8_t>(out[i / 2] | ((i & 1) ? code << 4 : code));
      }
    }
  }
  // Lossless by construction for values on the format's grid; prove it for every row.
  float back[1024];
  float* chk = back;
  std::unique_ptr<float[]> big;
  if (d > 1024) {
    big.reset(new float[static_cast<size_t>(d)]);
    chk = big.get();
  }
  kv_decode(f, d, rope_dim, out, chk);
  if (std::memcmp(chk, x, static_cast<size_t>(d) * 4) != 0)
    throw Error("compact KV cache: a row is not on the storage grid (the reference simulation must round it first)");
}

void EntryStore::init(KvFormat f, int64_t d_, int64_t rope_dim_, int64_t max_rows) {
  format = f;
  d = d_;
  rope_dim = rope_dim_;
  row_bytes = kv_entry_bytes(f, d, rope_dim);
  chunks.clear();
  chunks.reserve(static_cast<size_t>(max_rows / kChunkEntries + 1));
}

EntryStore& EntryStore::operator=(const EntryStore& o) {
  if (this == &o) return *this;
  format = o.format;
  d = o.d;
  rope_dim = o.rope_dim;
  row_bytes = o.row_bytes;
  chunks.clear();
  chunks.reserve(o.chunks.capacity());
  const size_t cb = static_cast<size_t>(kChunkEntries * row_bytes);
  for (const auto& ch : o.chunks) {
    chunks.emplace_back(new uint8_t[cb]);
    std::memcpy(chunks.back().get(), ch.get(), cb);
  }
  return *this;
}

void EntryStore::reserve(int64_t n) {
  while (static_cast<int64_t>(chunks.size()) * kChunkEntries < n)
    chunks.emplace_back(new uint8_t[static_cast<size_t>(kChunkEntries * row_bytes)]);
}

void CompressorState::init(int64_t ratio_, int64_t d_, bool overlap, int64_t horizon, KvFormat f, int64_t rope_dim,
                           int64_t max_pos) {
  ratio = ratio_;
  d = d_;
  coff = overlap ? 2 : 1;
  ring_cap = coff * ratio + horizon;
  a.assign(static_cast<size_t>(ring_cap * coff * d), 0.0f);
  z.assign(static_cast<size_t>(ring_cap * coff * d), -std::numeric_limits<float>::infinity());
  entries.init(f, d, rope_dim, max_pos / ratio);
  n_entries = 0;
}

void CompressorState::reset() {
  std::fill(a.begin(), a.end(), 0.0f);
  std::fill(z.begin(), z.end(), -std::numeric_limits<float>::infinity());
  n_entries = 0;
}

KvFormat main_kv_format(const ModelConfig& c, Numerics nm) {
  return nm == Numerics::kReference && c.head_dim - c.rope_dim > 0 ? KvFormat::kMainFp8 : KvFormat::kF32;
}
KvFormat indexer_kv_format(const ModelConfig& c, Numerics nm) {
  return nm == Numerics::kReference && c.index_head_dim % 2 == 0 ? KvFormat::kIdxFp4 : KvFormat::kF32;
}

RopeParams layer_rope_params(const ModelConfig& c, int64_t layer) {
  RopeParams rp;
  rp.rope_dim = c.rope_dim;
  if (c.compress_ratio(layer) > 0) {
    rp.theta = c.compress_rope_theta;
    rp.yarn = c.original_seq_len > 0;
    rp.factor = c.rope_factor;
    rp.original_seq_len = c.original_seq_len;
    rp.beta_fast = c.beta_fast;
    rp.beta_slow = c.beta_slow;
  } else {
    rp.theta = c.rope_theta;
  }
  return rp;
}

void LayerState::init(const ModelConfig& c, int64_t layer_index, int64_t horizon, Numerics nm_in, KvStorage storage) {
  const Numerics nm = storage == KvStorage::kF32 ? Numerics::kPrecise : nm_in;  // format choice only
  layer = layer_index;
  head_dim = c.head_dim;
  rope_dim = c.rope_dim;
  window_cap = c.window + horizon;
  window_format = main_kv_format(c, nm);
  window_row_bytes = kv_entry_bytes(window_format, head_dim, rope_dim);
  window.assign(static_cast<size_t>(window_cap * window_row_bytes), 0);
  int64_t ratio = c.compress_ratio(layer_index);
  rope = make_rope_table(layer_rope_params(c, layer_index));
  has_compressor = ratio > 0;
  has_indexer = c.attention_kind(layer_index) == AttentionKind::kCsa;
  const int64_t max_pos = std::max<int64_t>(c.max_position_embeddings, 1);
  if (has_compressor)
    compressor.init(ratio, c.head_dim, ratio == 4, horizon, main_kv_format(c, nm), c.rope_dim, max_pos);
  if (has_indexer)
    indexer.init(ratio, c.index_head_dim, ratio == 4, horizon, indexer_kv_format(c, nm), 0, max_pos);
}

void LayerState::reset() {
  std::fill(window.begin(), window.end(), uint8_t{0});
  if (has_compressor) compressor.reset();
  if (has_indexer) indexer.reset();
}

void LayerState::add_bytes(KvBytes& b) const {
  b.window += static_cast<int64_t>(window.size());
  if (has_compressor) {
    b.compressor_state += compressor.ring_bytes();
    (has_indexer ? b.csa_entries : b.hca_entries) += compressor.entries.allocated_bytes();
  }
  if (has_indexer) {
    b.compressor_state += indexer.ring_bytes();
    b.indexer_keys += indexer.entries.allocated_bytes();
  }
}

KvBytes SequenceState::kv_bytes() const {
  KvBytes b;
  for (const auto& l : layers) l.add_bytes(b);
  for (const auto& l : mtp) l.add_bytes(b);
  return b;
}

KvBytes kv_bytes_at(const ModelConfig& c, Numerics nm, int64_t context, int64_t horizon) {
  KvBytes b;
  const int64_t main_row = kv_entry_bytes(main_kv_format(c, nm), c.head_dim, c.rope_dim);
  const int64_t idx_row = kv_entry_bytes(indexer_kv_format(c, nm), c.index_head_dim, 0);
  const int64_t n_all = c.n_layers + c.n_mtp_layers;
  for (int64_t l = 0; l < n_all; ++l) {
    // The MTP block's positions trail the main model's by one.
    const int64_t n = l < c.n_layers ? context : std::max<int64_t>(0, context - 1);
    b.window += (c.window + horizon) * main_row;
    const int64_t r = c.compress_ratio(l);
    if (r == 0) continue;
    const int64_t coff = r == 4 ? 2 : 1;
    b.compressor_state += 2 * (coff * r + horizon) * coff * c.head_dim * 4;
    if (c.attention_kind(l) == AttentionKind::kCsa) {
      b.csa_entries += EntryStore::bytes_for(main_row, n / r);
      b.compressor_state += 2 * (coff * r + horizon) * coff * c.index_head_dim * 4;
      b.indexer_keys += EntryStore::bytes_for(idx_row, n / r);
    } else {
      b.hca_entries += EntryStore::bytes_for(main_row, n / r);
    }
  }
  return b;
}

SequenceState::SequenceState(const ModelConfig& c, Numerics numerics_, int64_t rewind_horizon_, KvStorage storage)
    : numerics(numerics_), rewind_horizon(rewind_horizon_) {
  layers.resize(static_cast<size_t>(c.n_layers));
  for (int64_t l = 0; l < c.n_layers; ++l) layers[static_cast<size_t>(l)].init(c, l, rewind_horizon, numerics, storage);
  mtp.resize(static_cast<size_t>(c.n_mtp_layers));
  for (int64_t i = 0; i < c.n_mtp_layers; ++i) mtp[static_cast<size_t>(i)].init(c, c.n_layers + i, rewind_horizon, numerics, storage);
}

void SequenceState::reset() {
  pos = 0;
  mtp_pos = 0;
  for (auto& l : layers) l.reset();
  for (auto& l : mtp) l.reset();
}

}  // namespace dsv4

namespace dsv4 {

namespace {
void truncate_layer(LayerState& ls, int64_t m) {
  if (ls.has_compressor) ls.compressor.n_entries = std::min(ls.compressor.n_entries, m / ls.compressor.ratio);
  if (ls.has_indexer) ls.indexer.n_entries = std::min(ls.indexer.n_entries, m / ls.indexer.ratio);
}
}  // namespace

void SequenceState::truncate(int64_t m) {
  if (m == pos) return;
  if (m < 0 || m > pos || pos - m > rewind_horizon)
    throw Error("truncate to " + std::to_string(m) + " tokens: possible range is [" +
                std::to_string(std::max<int64_t>(0, pos - rewind_horizon)) + ", " + std::to_string(pos) +
                "] (rewind horizon " + std::to_string(rewind_horizon) + ")");
  // MTP position i combines main position i with token i+1: keep positions < m - 1.
  const int64_t mm = std::min(mtp_pos, std::max<int64_t>(0, m - 1));
  if (mtp_pos - mm > rewind_horizon)
    throw Error("truncate to " + std::to_string(m) + " tokens: the MTP state would rewind " +
                std::to_string(mtp_pos - mm) + " positions, more than the rewind horizon " +
                std::to_string(rewind_horizon));
  if (m == 0) {
    reset();
    return;
  }
  for (auto& l : layers) truncate_layer(l, m);
  pos = m;
  for (auto& l : mtp) truncate_layer(l, mm);
  mtp_pos = mm;
}

void SequenceState::truncate_mtp(int64_t m) {
  if (m == mtp_pos) return;
  if (m < 0 || m > mtp_pos || mtp_pos - m > rewind_horizon)
    throw Error("truncate the MTP block to " + std::to_string(m) + " positions: possible range is [" +
                std::to_string(std::max<int64_t>(0, mtp_pos - rewind_horizon)) + ", " + std::to_string(mtp_pos) +
                "] (rewind horizon " + std::to_string(rewind_horizon) + ")");
  if (m == 0) {
    for (auto& l : mtp) l.reset();
  } else {
    for (auto& l : mtp) truncate_layer(l, m);
  }
  mtp_pos = m;
}

}  // namespace dsv4
