#include "model/state_io.h"

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <limits>

#include "base/error.h"
#include "base/file.h"
#include "model/weights.h"

namespace dsv4 {

static_assert(std::endian::native == std::endian::little, "state files are little-endian; add byte swapping for this host");

namespace {

constexpr uint32_t kTagState = 0x54415453;  // "STAT"
constexpr uint32_t kTagLayer = 0x5259414c;  // "LAYR"
constexpr uint32_t kTagComp = 0x504d4f43;   // "COMP"

// FNV-1a, 64 bit.
struct Fnv64 {
  uint64_t h = 0xcbf29ce484222325ull;
  void add(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    for (size_t i = 0; i < n; ++i) {
      h ^= b[i];
      h *= 0x100000001b3ull;
    }
  }
  void add(std::string_view s) {
    add_i64(static_cast<int64_t>(s.size()));
    add(s.data(), s.size());
  }
  void add_i64(int64_t v) { add(&v, sizeof v); }
};

std::string str(int64_t v) { return std::to_string(v); }

const char* format_name(KvFormat f) {
  switch (f) {
    case KvFormat::kF32: return "f32";
    case KvFormat::kMainFp8: return "fp8-model1";
    case KvFormat::kIdxFp4: return "fp4-indexer";
  }
  return "?";
}

// Reads an int64 field and checks it equals what the current model / options need.
void expect_i64(ByteReader& r, const std::string& field, int64_t want) {
  const int64_t got = r.get<int64_t>(field);
  if (got != want) r.fail(field + " is " + str(got) + " in the file, this model and these options need " + str(want));
}

void expect_tag(ByteReader& r, uint32_t tag, const std::string& field) {
  if (r.get<uint32_t>(field + " tag") != tag) r.fail(field + ": bad section tag (not a state section, or corrupt)");
}

void save_store(const CompressorState& cs, ByteWriter& w, const CompressorState* base) {
  w.put(kTagComp);
  w.put<int64_t>(cs.ratio);
  w.put<int64_t>(cs.d);
  w.put<int64_t>(cs.coff);
  w.put<int64_t>(cs.ring_cap);
  w.put<uint8_t>(static_cast<uint8_t>(cs.entries.format));
  w.put<int64_t>(cs.entries.row_bytes);
  w.put<int64_t>(cs.n_entries);
  int64_t shared = 0;
  if (base && base->entries.row_bytes == cs.entries.row_bytes) {
    const int64_t lim = std::min(base->n_entries, cs.n_entries);
    const size_t rb = static_cast<size_t>(cs.entries.row_bytes);
    while (shared < lim && std::memcmp(base->entries.row(shared), cs.entries.row(shared), rb) == 0) ++shared;
  }
  w.put<int64_t>(shared);
  w.bytes(cs.a.data(), cs.a.size() * sizeof(float));
  w.bytes(cs.z.data(), cs.z.size() * sizeof(float));
  for (int64_t i = shared; i < cs.n_entries; ++i) w.bytes(cs.entries.row(i), static_cast<size_t>(cs.entries.row_bytes));
}

void load_store(ByteReader& r, CompressorState& cs, const CompressorState* base, const std::string& what, int64_t max_entries) {
  expect_tag(r, kTagComp, what);
  expect_i64(r, what + " ratio", cs.ratio);
  expect_i64(r, what + " dim", cs.d);
  expect_i64(r, what + " coff", cs.coff);
  expect_i64(r, what + " ring_cap", cs.ring_cap);
  const uint8_t f = r.get<uint8_t>(what + " format");
  if (f != static_cast<uint8_t>(cs.entries.format))
    r.fail(what + " format is " + str(f) + " in the file, this model and numerics mode store " + format_name(cs.entries.format) +
           " (" + str(static_cast<int>(cs.entries.format)) + ")");
  expect_i64(r, what + " row_bytes", cs.entries.row_bytes);
  const int64_t n = r.get<int64_t>(what + " n_entries");
  if (n < 0 || n > max_entries)
    r.fail(what + " n_entries is " + str(n) + ", outside [0, " + str(max_entries) + "] for the state's position");
  const int64_t shared = r.get<int64_t>(what + " shared_rows");
  const int64_t base_n = base ? base->n_entries : 0;
  if (shared < 0 || shared > n || shared > base_n)
    r.fail(what + " shared_rows is " + str(shared) + ", outside [0, " + str(std::min(n, base_n)) + "]");
  r.bytes(cs.a.data(), cs.a.size() * sizeof(float), what + " ring A");
  r.bytes(cs.z.data(), cs.z.size() * sizeof(float), what + " ring Z");
  const size_t rb = static_cast<size_t>(cs.entries.row_bytes);
  // Check the size before allocating: a corrupt count must not allocate gigabytes.
  if (static_cast<uint64_t>(n - shared) > r.remaining() / std::max<size_t>(rb, 1))
    r.fail(what + " rows: truncated (" + str(n - shared) + " rows of " + str(static_cast<int64_t>(rb)) + " bytes announced, " +
           str(static_cast<int64_t>(r.remaining())) + " bytes left)");
  cs.reserve_entries(n);
  for (int64_t i = 0; i < shared; ++i) std::memcpy(cs.entries.row(i), base->entries.row(i), rb);
  for (int64_t i = shared; i < n; ++i) r.bytes(cs.entries.row(i), rb, what + " row " + str(i));
  cs.n_entries = n;
}

void save_layer(const LayerState& ls, ByteWriter& w, const LayerState* base) {
  w.put(kTagLayer);
  w.put<int64_t>(ls.layer);
  w.put<int64_t>(ls.window_cap);
  w.put<int64_t>(ls.head_dim);
  w.put<int64_t>(ls.rope_dim);
  w.put<uint8_t>(static_cast<uint8_t>(ls.window_format));
  w.put<int64_t>(ls.window_row_bytes);
  w.bytes(ls.window.data(), ls.window.size());
  w.put<uint8_t>(ls.has_compressor ? 1 : 0);
  if (ls.has_compressor) save_store(ls.compressor, w, base && base->has_compressor ? &base->compressor : nullptr);
  w.put<uint8_t>(ls.has_indexer ? 1 : 0);
  if (ls.has_indexer) save_store(ls.indexer, w, base && base->has_indexer ? &base->indexer : nullptr);
}

void load_layer(ByteReader& r, LayerState& ls, const LayerState* base, const std::string& what, int64_t pos) {
  expect_tag(r, kTagLayer, what);
  expect_i64(r, what + " index", ls.layer);
  expect_i64(r, what + " window_cap", ls.window_cap);
  expect_i64(r, what + " head_dim", ls.head_dim);
  expect_i64(r, what + " rope_dim", ls.rope_dim);
  const uint8_t f = r.get<uint8_t>(what + " window format");
  if (f != static_cast<uint8_t>(ls.window_format))
    r.fail(what + " window format is " + str(f) + " in the file, this model and numerics mode store " + format_name(ls.window_format));
  expect_i64(r, what + " window_row_bytes", ls.window_row_bytes);
  r.bytes(ls.window.data(), ls.window.size(), what + " window ring");
  auto flag = [&](const std::string& field, bool want) {
    const uint8_t v = r.get<uint8_t>(field);
    if (v != (want ? 1 : 0)) r.fail(field + " is " + str(v) + " in the file, this model has " + (want ? "1" : "0"));
  };
  flag(what + " has_compressor", ls.has_compressor);
  if (ls.has_compressor)
    load_store(r, ls.compressor, base && base->has_compressor ? &base->compressor : nullptr, what + " compressor",
               pos / ls.compressor.ratio);
  flag(what + " has_indexer", ls.has_indexer);
  if (ls.has_indexer)
    load_store(r, ls.indexer, base && base->has_indexer ? &base->indexer : nullptr, what + " indexer", pos / ls.indexer.ratio);
}

}  // namespace

uint32_t crc32_bytes(const void* data, size_t n) {
  return static_cast<uint32_t>(::crc32_z(::crc32_z(0L, Z_NULL, 0), static_cast<const Bytef*>(data), n));
}

uint64_t model_fingerprint(const ModelWeights& w) {
  Fnv64 h;
  h.add(std::string_view("dsv4 model fingerprint v1"));
  const std::string cfg = w.dir.empty() ? std::string() : w.dir + "/config.json";
  if (!cfg.empty() && file_exists(cfg)) h.add(read_file(cfg));
  if (w.store) {
    for (const auto& [name, t] : w.store->tensors()) {
      h.add(name);
      h.add(dtype_name(t.dtype));
      h.add_i64(static_cast<int64_t>(t.shape.size()));
      for (int64_t d : t.shape) h.add_i64(d);
      h.add_i64(static_cast<int64_t>(t.nbytes));
      if (t.data && t.nbytes > 0) {
        const size_t k = std::min<size_t>(64, t.nbytes);
        h.add(t.data, k);
        h.add(t.data + t.nbytes - k, k);
      }
    }
  }
  return h.h;
}

void ByteReader::fail(const std::string& what) const { throw Error(name_ + ": " + what); }

void ByteReader::bytes(void* out, size_t n, const std::string& field) {
  if (n > remaining())
    fail("truncated: " + field + " needs " + std::to_string(n) + " bytes at offset " + std::to_string(off_) + ", only " +
         std::to_string(remaining()) + " left");
  if (n > 0) std::memcpy(out, data_.data() + off_, n);
  off_ += n;
}

void write_state_header(ByteWriter& w, const StateFileHeader& h) {
  ByteWriter hw;
  hw.bytes(kStateMagic, sizeof kStateMagic);
  hw.put<uint32_t>(kStateFormatVersion);
  hw.put<uint32_t>(static_cast<uint32_t>(kStateHeaderBytes));
  hw.put<uint64_t>(h.fingerprint);
  hw.put<uint8_t>(static_cast<uint8_t>(h.numerics));  // 0 reference, 1 precise, 2 int8
  hw.put<uint8_t>(h.flags);
  hw.put<uint16_t>(0);
  hw.put<uint32_t>(h.tokens_crc);
  hw.put<int64_t>(h.n_tokens);
  hw.put<int64_t>(h.rewind_horizon);
  hw.put<uint64_t>(h.payload_bytes);
  hw.put<uint32_t>(h.payload_crc);
  hw.put<uint32_t>(crc32_bytes(hw.buffer().data(), hw.buffer().size()));
  w.bytes(hw.buffer().data(), hw.buffer().size());
}

StateFileHeader parse_state_header(std::string_view bytes, const std::string& name) {
  ByteReader r(bytes.substr(0, std::min(bytes.size(), kStateHeaderBytes)), name);
  char magic[8];
  r.bytes(magic, sizeof magic, "header magic");
  if (std::memcmp(magic, kStateMagic, sizeof magic) != 0) r.fail("header magic: not a dsv4 session file");
  const uint32_t version = r.get<uint32_t>("header format version");
  if (version != kStateFormatVersion)
    r.fail("header format version is " + std::to_string(version) + ", this build reads version " + std::to_string(kStateFormatVersion));
  const uint32_t hb = r.get<uint32_t>("header size");
  if (hb != kStateHeaderBytes) r.fail("header size is " + std::to_string(hb) + ", expected " + std::to_string(kStateHeaderBytes));
  StateFileHeader h;
  h.fingerprint = r.get<uint64_t>("header model fingerprint");
  const uint8_t nm = r.get<uint8_t>("header numerics");
  h.flags = r.get<uint8_t>("header flags");
  const uint16_t zero = r.get<uint16_t>("header reserved");
  h.tokens_crc = r.get<uint32_t>("header tokens crc");
  h.n_tokens = r.get<int64_t>("header token count");
  h.rewind_horizon = r.get<int64_t>("header rewind horizon");
  h.payload_bytes = r.get<uint64_t>("header payload size");
  h.payload_crc = r.get<uint32_t>("header payload crc");
  const uint32_t crc = r.get<uint32_t>("header crc");
  if (crc != crc32_bytes(bytes.data(), kStateHeaderBytes - 4)) r.fail("header crc mismatch (corrupt header)");
  // The fields below are covered by the header CRC; these checks catch files written by a
  // different writer, not corruption.
  if (nm > 2) r.fail("header numerics is " + std::to_string(nm) + ", expected 0 (reference), 1 (precise) or 2 (int8)");
  h.numerics = static_cast<Numerics>(nm);
  if ((h.flags & ~(StateFileHeader::kHasLogits | StateFileHeader::kHasCheckpoint)) != 0 || zero != 0)
    r.fail("header flags: unknown bits set");
  constexpr int64_t kMaxTokens = int64_t(1) << 40;
  if (h.n_tokens < 0 || h.n_tokens > kMaxTokens) r.fail("header token count " + std::to_string(h.n_tokens) + " out of range");
  if (h.rewind_horizon < 0 || h.rewind_horizon > kMaxTokens) r.fail("header rewind horizon out of range");
  if (h.payload_bytes > (uint64_t(1) << 50)) r.fail("header payload size out of range");
  return h;
}

std::vector<int64_t> parse_state_tokens(std::string_view bytes, const StateFileHeader& h, const std::string& name) {
  const uint64_t need = kStateHeaderBytes + static_cast<uint64_t>(h.n_tokens) * 4;
  if (bytes.size() < need)
    throw Error(name + ": truncated: the token array needs " + std::to_string(need) + " bytes, the file has " + std::to_string(bytes.size()));
  const char* p = bytes.data() + kStateHeaderBytes;
  if (crc32_bytes(p, static_cast<size_t>(h.n_tokens) * 4) != h.tokens_crc) throw Error(name + ": tokens crc mismatch (corrupt token array)");
  std::vector<int64_t> toks(static_cast<size_t>(h.n_tokens));
  for (int64_t i = 0; i < h.n_tokens; ++i) {
    int32_t t;
    std::memcpy(&t, p + 4 * i, 4);
    toks[static_cast<size_t>(i)] = t;
  }
  return toks;
}

void save_state(const SequenceState& st, ByteWriter& w, const SequenceState* base) {
  w.put(kTagState);
  w.put<uint8_t>(static_cast<uint8_t>(st.numerics));
  w.put<int64_t>(st.pos);
  w.put<int64_t>(st.mtp_pos);
  w.put<int64_t>(st.rewind_horizon);
  w.put<int64_t>(static_cast<int64_t>(st.layers.size()));
  w.put<int64_t>(static_cast<int64_t>(st.mtp.size()));
  auto base_of = [&](const std::vector<LayerState>& bl, size_t i) -> const LayerState* {
    return base && i < bl.size() ? &bl[i] : nullptr;
  };
  for (size_t i = 0; i < st.layers.size(); ++i) save_layer(st.layers[i], w, base ? base_of(base->layers, i) : nullptr);
  for (size_t i = 0; i < st.mtp.size(); ++i) save_layer(st.mtp[i], w, base ? base_of(base->mtp, i) : nullptr);
}

void load_state(ByteReader& r, SequenceState& st, const SequenceState* base) {
  expect_tag(r, kTagState, "state");
  const uint8_t nm = r.get<uint8_t>("state numerics");
  const uint8_t want = static_cast<uint8_t>(st.numerics);
  if (nm != want) r.fail("state numerics is " + std::to_string(nm) + " in the file, the session runs " + std::to_string(want));
  const int64_t pos = r.get<int64_t>("state pos");
  const int64_t mtp_pos = r.get<int64_t>("state mtp_pos");
  if (pos < 0 || pos > (int64_t(1) << 40)) r.fail("state pos " + str(pos) + " out of range");
  if (mtp_pos < 0 || mtp_pos > pos) r.fail("state mtp_pos " + str(mtp_pos) + " outside [0, pos = " + str(pos) + "]");
  expect_i64(r, "state rewind_horizon", st.rewind_horizon);
  expect_i64(r, "state layer count", static_cast<int64_t>(st.layers.size()));
  expect_i64(r, "state mtp block count", static_cast<int64_t>(st.mtp.size()));
  for (size_t i = 0; i < st.layers.size(); ++i)
    load_layer(r, st.layers[i], base && i < base->layers.size() ? &base->layers[i] : nullptr, "layer " + std::to_string(i), pos);
  for (size_t i = 0; i < st.mtp.size(); ++i)
    load_layer(r, st.mtp[i], base && i < base->mtp.size() ? &base->mtp[i] : nullptr, "mtp block " + std::to_string(i), mtp_pos);
  st.pos = pos;
  st.mtp_pos = mtp_pos;
}

}  // namespace dsv4
