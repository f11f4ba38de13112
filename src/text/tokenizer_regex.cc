// PCRE2 wrapper for the pre-tokenizer's Split patterns.
//
// HF `tokenizers` runs these patterns with Oniguruma. PCRE2 with UTF + UCP agrees with it on
// \p{..} general categories, classes, lookaheads and leftmost-first alternation, but not on \s:
// PCRE2's UCP \s is \p{Z} plus \h and \v, which includes U+180E, while Oniguruma's \s is the
// Unicode White_Space property. The pattern is therefore rewritten to spell \s / \S as
// \p{White_Space} / \P{White_Space} (a property PCRE2 has had since 10.40) before compiling.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "base/error.h"
#include "text/tokenizer_internal.h"

namespace dsv4::text_detail {
namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<char*>(buf);
}

// One match-data block per thread, reused across calls so that matching allocates nothing.
// Patterns here have no capture groups, so a single ovector pair is all that is needed.
pcre2_match_data* thread_match_data() {
  struct Holder {
    pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
    ~Holder() { pcre2_match_data_free(md); }
  };
  thread_local Holder h;
  if (!h.md) throw std::bad_alloc();
  return h.md;
}

}  // namespace

std::string oniguruma_to_pcre2(const std::string& p) {
  std::string out;
  out.reserve(p.size() + 32);
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '\\' && i + 1 < p.size()) {
      char c = p[i + 1];
      if (c == 's') {
        out += "\\p{White_Space}";
      } else if (c == 'S') {
        out += "\\P{White_Space}";
      } else {
        out += p[i];
        out += c;
      }
      ++i;
    } else {
      out += p[i];
    }
  }
  return out;
}

Regex::Regex(const std::string& pattern, bool literal) {
  std::string pat = literal ? pattern : oniguruma_to_pcre2(pattern);
  // PCRE2_LITERAL allows no UCP (it has no classes to apply it to).
  uint32_t opts = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  int err = 0;
  PCRE2_SIZE off = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pat.data()), pat.size(), opts, &err, &off, nullptr);
  if (!code)
    throw Error("regex /" + pattern + "/: " + pcre2_message(err) + " at offset " + std::to_string(off));
  code_ = code;
  // JIT is an optimisation only: without it (e.g. no executable memory) the interpreter runs.
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

void Regex::find_all(std::string_view subject, std::vector<std::pair<uint32_t, uint32_t>>& out) const {
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* md = thread_match_data();
  auto s = reinterpret_cast<PCRE2_SPTR>(subject.data());
  size_t n = subject.size(), pos = 0;
  // Iterates like the `onig` crate's find_iter that HF uses: an empty match right where the
  // previous match ended is skipped by stepping one character; empty matches elsewhere are
  // kept (they split the text between matches, even though they produce no piece).
  bool have_last = false;
  size_t last_match_end = 0;
  while (pos <= n) {
    // The caller validated the UTF-8 once for the whole text; re-checking per call would make
    // matching quadratic.
    int rc = jit_ ? pcre2_jit_match(code, s, n, pos, PCRE2_NO_UTF_CHECK, md, nullptr)
                  : pcre2_match(code, s, n, pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)  // retry once with the heap-based interpreter
      rc = pcre2_match(code, s, n, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) return;
    if (rc < 0) throw Error("tokenizer regex match failed: " + pcre2_message(rc));
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t a = ov[0], b = ov[1];
    if (a == b && have_last && last_match_end == b) {
      ++pos;
      while (pos < n && (s[pos] & 0xC0) == 0x80) ++pos;
      continue;
    }
    out.emplace_back(uint32_t(a), uint32_t(b));
    pos = b;
    have_last = true;
    last_match_end = b;
  }
}

bool Regex::matches_at(std::string_view subject, size_t pos) const {
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* md = thread_match_data();
  auto s = reinterpret_cast<PCRE2_SPTR>(subject.data());
  // PCRE2_ANCHORED is a match-time option that disables JIT, so use the interpreter; this is
  // only used for added tokens with single_word / lstrip / rstrip, which are rare.
  int rc = pcre2_match(code, s, subject.size(), pos, PCRE2_NO_UTF_CHECK | PCRE2_ANCHORED, md, nullptr);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) throw Error("tokenizer regex match failed: " + pcre2_message(rc));
  return true;
}

}  // namespace dsv4::text_detail
