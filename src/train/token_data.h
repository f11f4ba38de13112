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
//
// Version 2 (example data for supervised fine-tuning): every shard entry also names a mask
// file, {"file": ..., "tokens": N, "crc32": C, "mask": "train-00000.mask", "mask_crc32": M},
// of N bytes, one per token: bit 0 (kLossBit) = the token is a training target (the model's
// prediction of it counts in the loss), bit 1 (kStartBit) = an example starts at this token.
// Examples are stored whole (no EOS is added: the chat encoder's text ends each assistant turn
// with EOS already) and never cross a shard. Version 1 directories stay readable (unmasked).
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
  std::unique_ptr<MappedFile> mask_map;  // version 2 only
  const uint32_t* data() const { return reinterpret_cast<const uint32_t*>(map->data()); }
  const uint8_t* mask() const { return mask_map ? mask_map->data() : nullptr; }
};

inline constexpr uint8_t kLossBit = 1, kStartBit = 2;

// One supervised example: its tokens and, per token, whether it is a training target.
struct Example {
  std::vector<int64_t> tokens;
  std::vector<uint8_t> loss;  // same length; 1 = target
};

// Where an example starts: shard index and token offset.
struct ExampleStart {
  int32_t shard = 0;
  int64_t offset = 0;
};

struct TokenData {
  std::string dir;
  int64_t vocab_size = 0;
  int64_t eos_token_id = 1;
  std::vector<Shard> train, val;
  bool masked = false;  // version 2: masks and example starts
  std::vector<ExampleStart> train_examples, val_examples;
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

// Writes a version-2 (masked example) data directory: the last `val_fraction` of the
// examples (at least one when there are two or more) are held out. Atomic files.
void write_example_data(const std::string& dir, const std::vector<Example>& examples, int64_t vocab_size,
                        int64_t eos_token_id, double val_fraction, int64_t shard_tokens = int64_t{1} << 26);
// The same with the number of held-out examples (the last n_val) given.
void write_example_data_split(const std::string& dir, const std::vector<Example>& examples, int64_t vocab_size,
                              int64_t eos_token_id, size_t n_val, int64_t shard_tokens = int64_t{1} << 26);

// A row of `len` tokens packed from whole examples (masked data): the first example is drawn by
// a seeded hash of (step, row) as train_window does; the examples after it follow while they
// fit whole; the rest is padding (EOS, loss 0). An example longer than `len` fills the row
// with its first `len` tokens. loss[i] = 1 where token i is a training target.
void train_example_row(const TokenData& d, uint64_t seed, int64_t step, int64_t row, int64_t len, int64_t* tokens,
                       uint8_t* loss);
// Held-out row i: packed the same way from held-out example i (wrapping around).
void val_example_row(const TokenData& d, int64_t i, int64_t len, int64_t* tokens, uint8_t* loss);

// Training windows of `len` tokens: the start of window (step, row) is drawn from a seeded
// hash (no sampler state: a resumed run draws the same windows), uniformly over every start
// position in the train shards.
void train_window(const TokenData& d, uint64_t seed, int64_t step, int64_t row, int64_t len, int64_t* out);
// Held-out window i: consecutive non-overlapping windows of the val shards (wrapping around).
void val_window(const TokenData& d, int64_t i, int64_t len, int64_t* out);

}  // namespace dsv4::train
