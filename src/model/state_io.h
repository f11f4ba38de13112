// Serialisation of a sequence's state (model/state.h) to bytes: the building blocks of the
// session files of the server's disk prefix cache (engine/session.h, Session::save / load).
//
// A session file (all integers little-endian; the engine writes it, this layer defines it):
//
//   header, 64 bytes (StateFileHeader):
//     0  8  magic "DSV4SES\x1a"
//     8  4  format version (kStateFormatVersion)
//    12  4  header size (64)
//    16  8  model fingerprint (model_fingerprint: config.json + tensor names / dtypes / shapes +
//           sampled tensor bytes)
//    24  1  numerics (0 reference, 1 precise)
//    25  1  flags (bit 0: last logits present, bit 1: checkpoint present)
//    26  2  zero
//    28  4  CRC-32 of the token array
//    32  8  token count n
//    40  8  rewind horizon of the state (ring sizes depend on it)
//    48  8  payload size in bytes
//    56  4  CRC-32 of the payload
//    60  4  CRC-32 of header bytes 0..59
//   tokens: n x int32 (so an index of cached prefixes needs only the header and the tokens)
//   payload: [u64 vocab, vocab x f32 logits] if flag 0; the state section (save_state);
//            [u64 m, m x int32 checkpoint tokens, the checkpoint's state section] if flag 1.
//
// A state section stores every structural field (layer count, ring sizes, dims, storage
// formats, row sizes) next to the data, and load_state checks each against the state the
// current model and options build, so a file never loads into a state of another shape. The
// append-only compressed rows are written up to n_entries; a second state (the checkpoint) can
// name a `base` state whose leading identical rows it shares instead of repeating them.
// Readers are bounded: every read checks the remaining size and throws Error naming the file
// and the field.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "model/state.h"

namespace dsv4 {

struct ModelWeights;

inline constexpr char kStateMagic[8] = {'D', 'S', 'V', '4', 'S', 'E', 'S', '\x1a'};
inline constexpr uint32_t kStateFormatVersion = 1;
inline constexpr size_t kStateHeaderBytes = 64;

uint32_t crc32_bytes(const void* data, size_t n);

// A hash of what the state depends on: config.json's bytes, every tensor's name, dtype and
// shape, and the first and last 64 bytes of every tensor's data (cheap: two pages per tensor;
// catches retrained weights of an unchanged layout). Deterministic across runs and machines.
uint64_t model_fingerprint(const ModelWeights& w);

class ByteWriter {
 public:
  std::string& buffer() { return buf_; }
  template <typename T>
  void put(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    buf_.append(b, sizeof(T));
  }
  void bytes(const void* p, size_t n) { buf_.append(static_cast<const char*>(p), n); }

 private:
  std::string buf_;
};

// Bounded reader over a byte range; `name` (the file) prefixes every error.
class ByteReader {
 public:
  ByteReader(std::string_view data, std::string name) : data_(data), name_(std::move(name)) {}
  template <typename T>
  T get(const std::string& field) {
    static_assert(std::is_trivially_copyable_v<T>);
    T v;
    bytes(&v, sizeof(T), field);
    return v;
  }
  void bytes(void* out, size_t n, const std::string& field);
  size_t remaining() const { return data_.size() - off_; }
  size_t offset() const { return off_; }
  const std::string& name() const { return name_; }
  [[noreturn]] void fail(const std::string& what) const;

 private:
  std::string_view data_;
  size_t off_ = 0;
  std::string name_;
};

struct StateFileHeader {
  uint64_t fingerprint = 0;
  Numerics numerics = Numerics::kReference;
  uint8_t flags = 0;
  uint32_t tokens_crc = 0;
  int64_t n_tokens = 0;
  int64_t rewind_horizon = 0;
  uint64_t payload_bytes = 0;
  uint32_t payload_crc = 0;
  static constexpr uint8_t kHasLogits = 1, kHasCheckpoint = 2;

  // Total file size this header announces.
  uint64_t file_bytes() const { return kStateHeaderBytes + static_cast<uint64_t>(n_tokens) * 4 + payload_bytes; }
};

void write_state_header(ByteWriter& w, const StateFileHeader& h);
// Parses and checks the fixed part (magic, version, header size, header CRC, numerics byte,
// flags, sizes). Does not check the fingerprint (the caller compares it with its model's).
StateFileHeader parse_state_header(std::string_view bytes, const std::string& name);

// The token array that follows the header (bytes = the file from its start, at least the header
// and the tokens); checks the tokens CRC.
std::vector<int64_t> parse_state_tokens(std::string_view bytes, const StateFileHeader& h, const std::string& name);

// Appends the state section of `st`. With `base`, leading compressed rows equal to base's rows
// of the same store are written as a count only.
void save_state(const SequenceState& st, ByteWriter& w, const SequenceState* base = nullptr);
// Reads a state section into `st`, which must be freshly built for the current model and
// options (SequenceState(config, numerics, horizon)): its structure is the reference the file
// is checked against. `base` must be what was passed to save_state.
void load_state(ByteReader& r, SequenceState& st, const SequenceState* base = nullptr);

}  // namespace dsv4
