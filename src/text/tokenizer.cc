// Encoding (added tokens -> pre-tokenizer -> byte-level BPE), decoding and streaming decoding.
#include "text/tokenizer.h"

#include <algorithm>

#include "base/error.h"
#include "text/tokenizer_internal.h"

namespace dsv4 {
namespace text_detail {
namespace {

using Span = std::pair<uint32_t, uint32_t>;

// Reusable buffers for one encode call: one set per pre-tokenizer step, because the steps
// recurse (a piece of step k is split by step k+1 while step k's list is still being walked).
struct Scratch {
  std::vector<std::vector<Span>> matches;
  std::vector<std::vector<Span>> pieces;
  std::string prefixed;  // ByteLevel add_prefix_space: " " + piece
  std::vector<int32_t> symbols;
};

// HF's Split: turns the matches of the step's pattern in a piece of n bytes into sub-pieces
// according to the behaviour (and invert), dropping empty ones, as HF does.
void split_pieces(const PreStep& step, uint32_t n, const std::vector<Span>& matches, std::vector<Span>& out) {
  out.clear();
  // (offsets, is_match) list exactly as HF's Pattern::find_matches builds it.
  struct Part {
    uint32_t a, b;
    bool m;
  };
  thread_local std::vector<Part> parts;
  parts.clear();
  if (n == 0) return;
  uint32_t prev = 0;
  for (const Span& s : matches) {
    if (prev != s.first) parts.push_back({prev, s.first, false});
    parts.push_back({s.first, s.second, true});
    prev = s.second;
  }
  if (prev != n) parts.push_back({prev, n, false});
  if (step.invert)
    for (Part& p : parts) p.m = !p.m;

  switch (step.behavior) {
    case SplitBehavior::Isolated:
      for (const Part& p : parts) out.push_back({p.a, p.b});
      break;
    case SplitBehavior::Removed:
      for (const Part& p : parts)
        if (!p.m) out.push_back({p.a, p.b});
      break;
    case SplitBehavior::MergedWithPrevious: {
      bool prev_match = false;
      for (const Part& p : parts) {
        if (p.m && !prev_match && !out.empty()) out.back().second = p.b;
        else out.push_back({p.a, p.b});
        prev_match = p.m;
      }
      break;
    }
    case SplitBehavior::MergedWithNext: {
      bool prev_match = false;
      for (size_t i = parts.size(); i-- > 0;) {
        const Part& p = parts[i];
        if (p.m && !prev_match && !out.empty()) out.back().first = p.a;
        else out.push_back({p.a, p.b});
        prev_match = p.m;
      }
      std::reverse(out.begin(), out.end());
      break;
    }
    case SplitBehavior::Contiguous: {
      bool prev_match = false;
      for (const Part& p : parts) {
        if (p.m == prev_match && !out.empty()) out.back().second = p.b;
        else out.push_back({p.a, p.b});
        prev_match = p.m;
      }
      break;
    }
  }
  // HF drops empty pieces.
  out.erase(std::remove_if(out.begin(), out.end(), [](const Span& s) { return s.first == s.second; }), out.end());
}

void run_steps(const TokenizerImpl& t, size_t k, std::string_view piece, Scratch& sc, std::vector<int32_t>& out) {
  const PreStep& step = t.steps[k];
  if (step.kind == PreStep::ByteLevel) {
    std::string_view p = piece;
    if (step.add_prefix_space && (p.empty() || p[0] != ' ')) {
      sc.prefixed.assign(1, ' ');
      sc.prefixed.append(p);
      p = sc.prefixed;
    }
    if (!step.regex) {
      t.encode_word(p, out);
      return;
    }
    auto& m = sc.matches[k];
    m.clear();
    step.regex->find_all(p, m);
    PreStep iso{PreStep::Split, nullptr};  // ByteLevel splits with Isolated behaviour
    split_pieces(iso, uint32_t(p.size()), m, sc.pieces[k]);
    for (const Span& s : sc.pieces[k]) t.encode_word(p.substr(s.first, s.second - s.first), out);
    return;
  }
  auto& m = sc.matches[k];
  m.clear();
  step.regex->find_all(piece, m);
  auto& pieces = sc.pieces[k];
  split_pieces(step, uint32_t(piece.size()), m, pieces);
  // Later steps reuse other levels' buffers only, so `pieces` stays valid while iterating.
  for (size_t i = 0; i < pieces.size(); ++i)
    run_steps(t, k + 1, piece.substr(pieces[i].first, pieces[i].second - pieces[i].first), sc, out);
}

thread_local Scratch* tl_scratch = nullptr;
// Set only during Tokenizer::pre_tokenize on this thread: words go here instead of the BPE.
thread_local const std::function<void(std::string_view)>* tl_word_sink = nullptr;

}  // namespace

void TokenizerImpl::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (tl_word_sink) {
    (*tl_word_sink)(word);
    return;
  }
  if (word.size() == 1) {
    out.push_back(byte_id[uint8_t(word[0])]);
    return;
  }
  if (ignore_merges) {
    auto it = vocab.find(byte_level_encode(word));
    if (it != vocab.end()) {
      out.push_back(it->second);
      return;
    }
  }
  // Short words merge faster than a locked cache lookup costs; only longer ones are cached.
  const bool cacheable = word.size() >= kCacheMinBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu);
    auto it = cache.find(word);
    if (it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t>& sym = tl_scratch->symbols;
  sym.clear();
  for (unsigned char c : word) sym.push_back(byte_id[c]);
  size_t before = out.size();
  bpe_merge(merges, sym, out);
  if (!cacheable) return;
  std::lock_guard<std::mutex> lock(cache_mu);
  // Bounded: when full, start over rather than track recency; the working set of a text
  // refills it quickly and this keeps the bookkeeping off the hot path.
  if (cache.size() >= kCacheMax) cache.clear();
  cache.emplace(std::string(word), std::vector<int32_t>(out.begin() + ptrdiff_t(before), out.end()));
}

void TokenizerImpl::encode_segment(std::string_view seg, std::vector<int32_t>& out) const {
  // The normalizer is the identity (anything else is rejected at load time).
  run_steps(*this, 0, seg, *tl_scratch, out);
}

namespace {

// Whether the last character of s[0..end) / the first of s[pos..] is in the class `re`.
bool char_before_is(const Regex& re, std::string_view s, size_t end) {
  if (end == 0) return false;
  size_t i = end - 1;
  while (i > 0 && (uint8_t(s[i]) & 0xC0) == 0x80) --i;
  return re.matches_at(s.substr(0, end), i);
}
bool char_at_is(const Regex& re, std::string_view s, size_t pos) { return pos < s.size() && re.matches_at(s, pos); }

// HF AddedVocabulary::find_matches: splits `s` at added tokens. Calls gap(start, end) for text
// between tokens and token(id) for each token, in order.
template <class Gap>
void split_added(const TokenizerImpl& t, const TokenMatcher& m, std::string_view s, Gap&& gap,
                 std::vector<int32_t>& out) {
  size_t start_offset = 0, pos = 0, n = s.size();
  while (pos < n) {
    if (!m.can_start(uint8_t(s[pos]))) {
      ++pos;
      continue;
    }
    size_t len = 0;
    const AddedToken* tok = m.match_at(s, pos, &len);
    if (!tok) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + len;
    pos = stop;  // the matcher resumes after the match even when it is discarded below
    if (tok->single_word) {
      bool start_space = start == 0 || !char_before_is(*t.word_char, s, start);
      bool stop_space = stop == n || !char_at_is(*t.word_char, s, stop);
      if (!start_space || !stop_space) continue;
    }
    if (tok->lstrip) {
      size_t ns = start;
      while (ns > 0 && char_before_is(*t.space_char, s, ns)) {
        --ns;
        while (ns > 0 && (uint8_t(s[ns]) & 0xC0) == 0x80) --ns;
      }
      start = std::max(ns, start_offset);  // never strip into the previous match
    }
    if (tok->rstrip) {
      while (char_at_is(*t.space_char, s, stop)) {
        ++stop;
        while (stop < n && (uint8_t(s[stop]) & 0xC0) == 0x80) ++stop;
      }
    }
    if (start_offset < start) gap(start_offset, start);
    out.push_back(tok->id);
    start_offset = stop;
  }
  if (start_offset < n) gap(start_offset, n);
}

}  // namespace

void TokenizerImpl::encode_text(std::string_view text, bool parse_special, std::vector<int32_t>& out) const {
  // Buffers are kept per thread so that encoding many short texts does not allocate each
  // time; tl_scratch is non-null only during an encode on this thread.
  thread_local Scratch reused;
  Scratch local;
  Scratch& sc = tl_scratch ? local : reused;
  if (sc.matches.size() < steps.size()) {
    sc.matches.resize(steps.size());
    sc.pieces.resize(steps.size());
  }
  Scratch* saved = tl_scratch;
  tl_scratch = &sc;
  struct Restore {
    Scratch* s;
    ~Restore() { tl_scratch = s; }
  } restore{saved};

  if (!parse_special || (match_raw.empty() && match_normalized.empty())) {
    encode_segment(text, out);
    return;
  }
  split_added(
      *this, match_raw, text,
      [&](size_t a, size_t b) {
        std::string_view seg = text.substr(a, b - a);
        split_added(
            *this, match_normalized, seg, [&](size_t c, size_t d) { encode_segment(seg.substr(c, d - c), out); },
            out);
      },
      out);
}

}  // namespace text_detail

using text_detail::TokenizerImpl;

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool parse_special) const {
  size_t bad = text_detail::find_invalid_utf8(text);
  if (bad != std::string_view::npos)
    throw Error("tokenizer: input is not valid UTF-8 (byte offset " + std::to_string(bad) + ")");
  // Piece offsets are 32-bit to keep the per-word bookkeeping small.
  if (text.size() > UINT32_MAX) throw Error("tokenizer: input larger than 4 GiB");
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  impl_->encode_text(text, parse_special, out);
  return out;
}

static void check_id(const TokenizerImpl& t, int32_t id) {
  if (id < 0 || size_t(id) >= t.has_id.size() || !t.has_id[size_t(id)])
    throw Error("tokenizer: invalid token id " + std::to_string(id) + " (vocab size " +
                std::to_string(t.has_id.size()) + ")");
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  const TokenizerImpl& t = *impl_;
  std::string bytes;
  bool first = true;
  for (int32_t id : ids) {
    check_id(t, id);
    if (skip_special && t.skip_if_special[size_t(id)]) continue;
    if (!t.byte_level_decoder && !first) bytes += ' ';
    bytes += t.id_to_bytes[size_t(id)];
    first = false;
  }
  std::string out;
  out.reserve(bytes.size());
  text_detail::append_utf8_lossy(out, bytes, true);
  return out;
}

void Tokenizer::pre_tokenize(std::string_view text, const std::function<void(std::string_view)>& word) const {
  size_t bad = text_detail::find_invalid_utf8(text);
  if (bad != std::string_view::npos)
    throw Error("tokenizer: input is not valid UTF-8 (byte offset " + std::to_string(bad) + ")");
  if (text.size() > UINT32_MAX) throw Error("tokenizer: input larger than 4 GiB");
  const auto* saved = text_detail::tl_word_sink;
  text_detail::tl_word_sink = &word;
  struct Restore {
    const std::function<void(std::string_view)>* s;
    ~Restore() { text_detail::tl_word_sink = s; }
  } restore{saved};
  std::vector<int32_t> added_ids;  // ids of added tokens found in the text: not words, dropped
  impl_->encode_text(text, true, added_ids);
}

int32_t Tokenizer::token_id(std::string_view token) const {
  const TokenizerImpl& t = *impl_;
  auto it = t.added_vocab.find(token);
  if (it != t.added_vocab.end()) return it->second;
  it = t.vocab.find(token);
  return it != t.vocab.end() ? it->second : -1;
}

std::string Tokenizer::token_text(int32_t id) const {
  check_id(*impl_, id);
  return impl_->id_to_text[size_t(id)];
}

const std::string& Tokenizer::token_bytes(int32_t id) const {
  check_id(*impl_, id);
  return impl_->id_to_bytes[size_t(id)];
}

bool Tokenizer::is_special(int32_t id) const {
  const TokenizerImpl& t = *impl_;
  return id >= 0 && size_t(id) < t.skip_if_special.size() && t.skip_if_special[size_t(id)];
}

int32_t Tokenizer::vocab_size() const { return int32_t(impl_->has_id.size()); }

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special)
    : tokenizer_(tokenizer), skip_special_(skip_special) {}

std::string StreamDecoder::push(int32_t id) {
  const std::string& bytes = tokenizer_.token_bytes(id);  // validates the id first
  if (skip_special_ && tokenizer_.is_special(id)) return {};
  if (!tokenizer_.impl_->byte_level_decoder && started_) pending_ += ' ';
  started_ = true;
  pending_ += bytes;
  std::string out;
  size_t used = text_detail::append_utf8_lossy(out, pending_, false);
  pending_.erase(0, used);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  text_detail::append_utf8_lossy(out, pending_, true);
  pending_.clear();
  started_ = false;
  return out;
}

}  // namespace dsv4
