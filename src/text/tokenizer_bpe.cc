// Byte-level alphabet and the BPE merge loop.
#include <algorithm>
#include <queue>

#include "text/tokenizer_internal.h"

namespace dsv4::text_detail {

// GPT-2's rule: printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves;
// the other 68 bytes get the code points 256, 257, ... in byte order. Every byte thus maps to
// a visible character, so byte strings can live in a JSON vocabulary.
ByteLevelAlphabet::ByteLevelAlphabet() {
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    byte_to_cp[b] = printable ? b : next++;
    cp_to_byte[byte_to_cp[b]] = uint8_t(b);
  }
}

const ByteLevelAlphabet& byte_level_alphabet() {
  static const ByteLevelAlphabet a;
  return a;
}

std::string byte_level_encode(std::string_view bytes) {
  const ByteLevelAlphabet& a = byte_level_alphabet();
  std::string s;
  s.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) append_utf8(s, a.byte_to_cp[c]);
  return s;
}

void BpeMerges::reserve(size_t n) {
  size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  if (cap > slots_.size()) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(cap, Slot{});
    count_ = 0;
    for (const Slot& s : old)
      if (s.key != kEmpty) insert(int32_t(s.key >> 32), int32_t(uint32_t(s.key)), s.rank, s.merged);
  }
}

void BpeMerges::grow() { reserve(std::max<size_t>(16, slots_.size())); }

void BpeMerges::insert(int32_t a, int32_t b, uint32_t rank, int32_t merged) {
  if ((count_ + 1) * 2 > slots_.size()) grow();
  uint64_t key = pack(a, b);
  size_t mask = slots_.size() - 1;
  for (size_t i = hash(key) & mask;; i = (i + 1) & mask) {
    Slot& s = slots_[i];
    if (s.key == key || s.key == kEmpty) {
      if (s.key == kEmpty) ++count_;
      // HF builds its merge map by inserting every line in order, so a repeated pair keeps
      // the rank of its last occurrence.
      s = Slot{key, rank, merged};
      return;
    }
  }
}

namespace {

constexpr uint32_t kNoRank = ~uint32_t{0};

// Short words: keep the rank of every adjacent pair in an array and merge the lowest
// (leftmost on ties) until nothing merges. Quadratic, but words are short and this touches
// only small contiguous arrays.
void merge_small(const BpeMerges& merges, std::vector<int32_t>& sym) {
  size_t n = sym.size();
  uint32_t ranks[64];
  int32_t merged_ids[64];
  auto pair_rank = [&](size_t i) {
    uint32_t r;
    int32_t m;
    if (merges.find(sym[i], sym[i + 1], &r, &m)) {
      merged_ids[i] = m;
      return r;
    }
    return kNoRank;
  };
  for (size_t i = 0; i + 1 < n; ++i) ranks[i] = pair_rank(i);
  while (n > 1) {
    size_t best = 0;
    uint32_t best_rank = kNoRank;
    for (size_t i = 0; i + 1 < n; ++i)
      if (ranks[i] < best_rank) best_rank = ranks[i], best = i;
    if (best_rank == kNoRank) break;
    sym[best] = merged_ids[best];
    // Remove symbol best+1 and the pair rank that started at it.
    for (size_t i = best + 1; i + 1 < n; ++i) {
      sym[i] = sym[i + 1];
      ranks[i] = ranks[i + 1];
      merged_ids[i] = merged_ids[i + 1];
    }
    --n;
    if (best + 1 < n) ranks[best] = pair_rank(best);
    if (best > 0) ranks[best - 1] = pair_rank(best - 1);
  }
  sym.resize(n);
}

// Long words: HF's algorithm, a min-heap of (rank, position) over a linked list of symbols,
// O(n log n). Stale heap entries are recognised by re-looking up the pair's rank: two
// different pairs never share a rank, and a symbol only ever grows, so an equal rank at the
// same position means the same pair.
void merge_large(const BpeMerges& merges, std::vector<int32_t>& sym) {
  size_t n = sym.size();
  std::vector<int32_t> next(n), prev(n);
  for (size_t i = 0; i < n; ++i) {
    next[i] = i + 1 < n ? int32_t(i + 1) : -1;
    prev[i] = int32_t(i) - 1;
  }
  using Entry = std::pair<uint32_t, uint32_t>;  // (rank, position): smallest first
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  auto push_pair = [&](int32_t i) {
    if (i < 0 || next[i] < 0) return;
    uint32_t r;
    int32_t m;
    if (merges.find(sym[i], sym[next[i]], &r, &m)) heap.push({r, uint32_t(i)});
  };
  for (size_t i = 0; i + 1 < n; ++i) push_pair(int32_t(i));
  std::vector<uint8_t> dead(n, 0);
  while (!heap.empty()) {
    auto [rank, pos] = heap.top();
    heap.pop();
    if (dead[pos] || next[pos] < 0) continue;
    int32_t right = next[pos];
    uint32_t r;
    int32_t m;
    if (!merges.find(sym[pos], sym[right], &r, &m) || r != rank) continue;
    sym[pos] = m;
    dead[right] = 1;
    next[pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = int32_t(pos);
    push_pair(prev[pos]);
    push_pair(int32_t(pos));
  }
  size_t w = 0;
  for (int32_t i = 0; i >= 0; i = next[i]) sym[w++] = sym[i];
  sym.resize(w);
}

}  // namespace

void bpe_merge(const BpeMerges& merges, std::vector<int32_t>& symbols, std::vector<int32_t>& out) {
  if (symbols.size() <= 64) {
    merge_small(merges, symbols);
  } else {
    merge_large(merges, symbols);
  }
  out.insert(out.end(), symbols.begin(), symbols.end());
}

}  // namespace dsv4::text_detail
