// UTF-8 validation and lossy decoding for the tokenizer.
// The lossy rule is the "maximal subpart" one of Unicode §3.9 / WHATWG, which is also what
// Rust's String::from_utf8_lossy (used by HF's ByteLevel decoder) implements: a lead byte plus
// the continuation bytes that could still start a valid sequence form one U+FFFD.
#include "text/tokenizer_internal.h"

namespace dsv4::text_detail {
namespace {

// Length of the well-formed prefix of a sequence starting at s[0] (1..4), how many bytes a
// complete sequence needs (`need`), and whether it ran off the end of the input while valid.
struct SeqCheck {
  size_t valid;      // bytes that are a valid (prefix of a) sequence
  size_t need;       // total length of the sequence the lead byte announces (0 = bad lead)
};

SeqCheck check_seq(const uint8_t* s, size_t n) {
  uint8_t b0 = s[0];
  if (b0 < 0x80) return {1, 1};
  size_t need;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;  // no overlong forms
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;  // no overlong forms
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return {0, 0};
  }
  size_t i = 1;
  for (; i < need && i < n; ++i) {
    uint8_t c = s[i];
    uint8_t l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
    if (c < l || c > h) break;
  }
  return {i, need};
}

}  // namespace

size_t find_invalid_utf8(std::string_view s) {
  const uint8_t* p = reinterpret_cast<const uint8_t*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    // ASCII fast path, 8 bytes at a time.
    while (i + 8 <= n) {
      uint64_t w;
      __builtin_memcpy(&w, p + i, 8);
      if (w & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= n) break;
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    SeqCheck c = check_seq(p + i, n - i);
    if (c.need == 0 || c.valid != c.need) return i;
    i += c.need;
  }
  return std::string_view::npos;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

size_t append_utf8_lossy(std::string& out, std::string_view bytes, bool final) {
  static constexpr char kReplacement[] = "\xEF\xBF\xBD";
  const uint8_t* p = reinterpret_cast<const uint8_t*>(bytes.data());
  size_t n = bytes.size(), i = 0, run = 0;  // [run, i) is valid text not yet appended
  while (i < n) {
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    SeqCheck c = check_seq(p + i, n - i);
    if (c.need != 0 && c.valid == c.need) {
      i += c.need;
      continue;
    }
    out.append(bytes.data() + run, i - run);
    if (c.need != 0 && i + c.valid == n && !final) return i;  // incomplete, may still complete
    out += kReplacement;
    i += c.valid == 0 ? 1 : c.valid;
    run = i;
  }
  out.append(bytes.data() + run, n - run);
  return n;
}

}  // namespace dsv4::text_detail
