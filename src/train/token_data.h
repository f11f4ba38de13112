// Token shards for training (no torch here).
//
// A data directory holds manifest.json and shard files. A shard is raw little-endian uint32
// token ids (memory-mapped as is; documents packed back to back, each ended by the EOS id).
// manifest.json:
//   {"format": "dsv4-tokens", "version": 1, "vocab_size": V, "eos_token_id": E,
//    "train": [{"file": "train-00000.u32", "tokens": N, "crc32": C}, ...],
//    "val":   [{"file": "val-00000.u32",   "tokens": N, "crc32": C}, ...]}
// crc32 is the CRC-32 (zlib polynomial) of the shard's bytes. Opening checks every shard's
// size, checksum and token range, and throws Error naming the file.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/file.h"

namespace dsv4::train {

struct Shard {
  std::string path;
  int64_t tokens = 0;
  std::unique_ptr<MappedFile> map;
  const uint32_t* data() const { return reinterpret_cast<const uint32_t*>(map->data()); }
};

struct TokenData {
  std::string dir;
  int64_t vocab_size = 0;
  int64_t eos_token_id = 1;
  std::vector<Shard> train, val;
  int64_t train_tokens() const;
  int64_t val_tokens() const;
};

// Opens and verifies DIR (see above). vocab_size > 0: must equal the manifest's.
TokenData open_token_data(const std::string& dir, int64_t model_vocab);

// Writes a data directory from token sequences (documents): each document is followed by
// eos; the last `val_fraction` of the documents (at least one when there are two or more) go
// to the held-out split. Shards of at most shard_tokens tokens. Files are written atomically.
void write_token_data(const std::string& dir, const std::vector<std::vector<int64_t>>& docs, int64_t vocab_size,
                      int64_t eos_token_id, double val_fraction, int64_t shard_tokens = int64_t{1} << 26);

// Training windows of `len` tokens: the start of window (step, row) is drawn from a seeded
// hash (no sampler state: a resumed run draws the same windows), uniformly over every start
// position in the train shards.
void train_window(const TokenData& d, uint64_t seed, int64_t step, int64_t row, int64_t len, int64_t* out);
// Held-out window i: consecutive non-overlapping windows of the val shards (wrapping around).
void val_window(const TokenData& d, int64_t i, int64_t len, int64_t* out);

}  // namespace dsv4::train
