#include "model/state.h"

#include <algorithm>
#include <limits>
#include <string>

#include "base/error.h"

namespace dsv4 {

void CompressorState::init(int64_t ratio_, int64_t d_, bool overlap, int64_t horizon) {
  ratio = ratio_;
  d = d_;
  coff = overlap ? 2 : 1;
  ring_cap = coff * ratio + horizon;
  a.assign(static_cast<size_t>(ring_cap * coff * d), 0.0f);
  z.assign(static_cast<size_t>(ring_cap * coff * d), -std::numeric_limits<float>::infinity());
  entries.clear();
  n_entries = 0;
}

void CompressorState::reset() {
  std::fill(a.begin(), a.end(), 0.0f);
  std::fill(z.begin(), z.end(), -std::numeric_limits<float>::infinity());
  n_entries = 0;
}

void CompressorState::reserve_entries(int64_t n) {
  size_t need = static_cast<size_t>(n * d);
  if (entries.size() >= need) return;
  size_t cap = std::max<size_t>(need, entries.size() * 2);
  cap = std::max<size_t>(cap, static_cast<size_t>(64 * d));
  entries.resize(cap);
}

void LayerState::init(const ModelConfig& c, int64_t layer_index, int64_t horizon) {
  layer = layer_index;
  head_dim = c.head_dim;
  window_cap = c.window + horizon;
  window.assign(static_cast<size_t>(window_cap * head_dim), 0.0f);
  int64_t ratio = c.compress_ratio(layer_index);
  RopeParams rp;
  rp.rope_dim = c.rope_dim;
  if (ratio > 0) {
    rp.theta = c.compress_rope_theta;
    rp.yarn = c.original_seq_len > 0;
    rp.factor = c.rope_factor;
    rp.original_seq_len = c.original_seq_len;
    rp.beta_fast = c.beta_fast;
    rp.beta_slow = c.beta_slow;
  } else {
    rp.theta = c.rope_theta;
  }
  rope = make_rope_table(rp);
  has_compressor = ratio > 0;
  has_indexer = c.attention_kind(layer_index) == AttentionKind::kCsa;
  if (has_compressor) compressor.init(ratio, c.head_dim, ratio == 4, horizon);
  if (has_indexer) indexer.init(ratio, c.index_head_dim, ratio == 4, horizon);
}

void LayerState::reset() {
  std::fill(window.begin(), window.end(), 0.0f);
  if (has_compressor) compressor.reset();
  if (has_indexer) indexer.reset();
}

SequenceState::SequenceState(const ModelConfig& c, Numerics numerics_, int64_t rewind_horizon_)
    : numerics(numerics_), rewind_horizon(rewind_horizon_) {
  layers.resize(static_cast<size_t>(c.n_layers));
  for (int64_t l = 0; l < c.n_layers; ++l) layers[static_cast<size_t>(l)].init(c, l, rewind_horizon);
  mtp.resize(static_cast<size_t>(c.n_mtp_layers));
  for (int64_t i = 0; i < c.n_mtp_layers; ++i) mtp[static_cast<size_t>(i)].init(c, c.n_layers + i, rewind_horizon);
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

}  // namespace dsv4
