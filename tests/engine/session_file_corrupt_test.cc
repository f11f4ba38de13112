// Corrupt, truncated and foreign session files: Session::load throws Error naming the file and
// the field, never reads out of bounds (this test runs under ASan), and leaves the session
// unchanged.
#include <gtest/gtest.h>

#include <random>

#include "base/error.h"
#include "session_file_common.h"

using namespace dsv4;
using namespace dsv4::test;

namespace {

constexpr uint64_t kFp = 0x1234;

const std::string& good_file() {
  static const std::string b = session_at(Numerics::kReference, 40, 44)->save(kFp);
  return b;
}

// Recomputes the CRCs after an edit, so the structural checks (not the CRCs) must catch it.
std::string fix_crcs(std::string b) {
  StateFileHeader h = parse_state_header(b, "x");  // the header itself was not edited
  const size_t tok = static_cast<size_t>(h.n_tokens) * 4;
  h.tokens_crc = crc32_bytes(b.data() + kStateHeaderBytes, tok);
  h.payload_bytes = b.size() - kStateHeaderBytes - tok;
  h.payload_crc = crc32_bytes(b.data() + kStateHeaderBytes + tok, h.payload_bytes);
  ByteWriter w;
  write_state_header(w, h);
  b.replace(0, kStateHeaderBytes, w.buffer());
  return b;
}

// Loads into a fresh session; returns the error message ("" if it loaded).
std::string load_error(std::string_view bytes, Numerics nm = Numerics::kReference, int64_t horizon = 8, uint64_t fp = kFp,
                       bool* unchanged = nullptr) {
  Session s(tiny_a(), file_opts(nm, horizon));
  if (unchanged) s.append(std::vector<int64_t>{1, 2, 3});
  try {
    s.load(bytes, fp, "cache/abc.dsv4pc");
  } catch (const Error& e) {
    if (unchanged) *unchanged = s.tokens() == std::vector<int64_t>{1, 2, 3} && !s.last_logits().empty();
    return e.what();
  }
  return "";
}

void expect_error(const std::string& msg, const std::string& part) {
  EXPECT_NE(msg.find("cache/abc.dsv4pc: "), std::string::npos) << msg;
  EXPECT_NE(msg.find(part), std::string::npos) << "want '" << part << "' in: " << msg;
}

TEST(SessionFileCorrupt, GoodFileLoads) { EXPECT_EQ(load_error(good_file()), ""); }

TEST(SessionFileCorrupt, EveryTruncationIsAnError) {
  const std::string& g = good_file();
  for (size_t n = 0; n < g.size(); n += (n < 300 ? 1 : 997)) {
    bool unchanged = false;
    const bool probe = n % 50 == 0;  // (the unchanged check runs a forward: only sometimes)
    const std::string m = load_error(std::string_view(g).substr(0, n), Numerics::kReference, 8, kFp, probe ? &unchanged : nullptr);
    ASSERT_NE(m, "") << "truncated to " << n;
    if (probe) EXPECT_TRUE(unchanged) << "session modified by a failed load";
    EXPECT_NE(m.find("cache/abc.dsv4pc: "), std::string::npos) << m;
  }
  expect_error(load_error(std::string_view(g).substr(0, g.size() - 1)), "truncated");
  expect_error(load_error(g + "x"), "trailing bytes");
}

TEST(SessionFileCorrupt, FlippedBytesFailTheChecks) {
  const std::string& g = good_file();
  std::string b = g;
  b[3] = 'X';
  expect_error(load_error(b), "header magic");
  b = g;
  b[20] ^= 1;  // fingerprint byte: the header CRC catches it
  expect_error(load_error(b), "header crc");
  b = g;
  b[kStateHeaderBytes + 1] ^= 1;
  expect_error(load_error(b), "tokens crc");
  for (size_t at : {g.size() / 2, g.size() - 1, kStateHeaderBytes + 44 * 4 + 3}) {
    b = g;
    b[at] ^= 0x40;
    expect_error(load_error(b), "payload crc");
  }
}

TEST(SessionFileCorrupt, ForeignFilesNameTheField) {
  const std::string& g = good_file();
  expect_error(load_error(g, Numerics::kReference, 8, kFp + 1), "model fingerprint");
  expect_error(load_error(g, Numerics::kPrecise), "numerics is reference, this session runs precise");
  expect_error(load_error(g, Numerics::kReference, 16), "rewind horizon is 8, this session uses 16");
  expect_error(load_error("not a session file at all, but long enough to hold a header........"), "header magic");
  std::string v = g;
  v[8] = 9;  // version 9 (header CRC not fixed: the version is checked first)
  expect_error(load_error(v), "header format version is 9");
}

TEST(SessionFileCorrupt, StructuralEditsWithValidCrcs) {
  const std::string& g = good_file();
  const size_t tok_end = kStateHeaderBytes + 44 * 4;
  // Payload starts with [u64 vocab, logits]; then the state section "STAT", numerics, pos.
  std::string b = g;
  b[tok_end] ^= 1;  // logits size
  expect_error(load_error(fix_crcs(b)), "logits size");
  const size_t state = tok_end + 8 + static_cast<size_t>(tiny_a()->config.vocab_size) * 4;
  b = g;
  b[state] = 'X';
  expect_error(load_error(fix_crcs(b)), "state: bad section tag");
  b = g;
  b[state + 5] ^= 2;  // pos 44 -> 46
  expect_error(load_error(fix_crcs(b)), "state pos is 46, the file holds 44 tokens");
  b = g;
  b[state + 5 + 16] ^= 1;  // rewind horizon in the state section
  expect_error(load_error(fix_crcs(b)), "state rewind_horizon");
  // Bad token id (crc fixed): named.
  b = g;
  const int32_t big = 1 << 30;
  std::memcpy(b.data() + kStateHeaderBytes, &big, 4);
  expect_error(load_error(fix_crcs(b)), "tokens: token id");
  // A shortened payload with consistent sizes and CRCs.
  b = fix_crcs(g.substr(0, g.size() - 100));
  expect_error(load_error(b), "truncated");
}

TEST(SessionFileCorrupt, RandomEditsWithValidCrcsNeverCrash) {
  const std::string& g = good_file();
  std::mt19937_64 rng(7);
  const size_t tok_end = kStateHeaderBytes + 44 * 4;
  int errors = 0;
  for (int it = 0; it < 200; ++it) {
    std::string b = g;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t at = tok_end + rng() % (b.size() - tok_end);
      b[at] = static_cast<char>(rng());
    }
    if (rng() % 4 == 0) b.resize(tok_end + rng() % (b.size() - tok_end));
    const std::string m = load_error(fix_crcs(b));
    if (!m.empty()) {
      ++errors;
      EXPECT_NE(m.find("cache/abc.dsv4pc: "), std::string::npos) << m;
    }
  }
  EXPECT_GT(errors, 0);
}

}  // namespace
