// GGUF files (llama.cpp's model format): a validating, memory-mapped reader for GGUF v2 / v3
// little-endian files, one file or a split set NAME-00001-of-0000N.gguf (given any part), and
// the byte-level writer used by `dsv4 convert`. The reader checks every header field, key,
// tensor info and data range before anything uses it: corrupt or truncated files give one
// Error naming the file and the key or tensor at fault.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/file.h"
#include "ops/ggml_types.h"

namespace dsv4 {

enum class GgufValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};

// One metadata value. Scalars: integers in `i` (u64 values above INT64_MAX are rejected at
// parse time), floats in `f`, strings in `s`. Arrays: elem type and the elements in `ints`,
// `floats` or `strings` (nested arrays are rejected).
struct GgufValue {
  GgufValueType type = GgufValueType::kU32;
  GgufValueType elem = GgufValueType::kU32;  // arrays
  int64_t i = 0;
  double f = 0.0;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;
  bool is_array() const { return type == GgufValueType::kArray; }
};

struct GgufTensor {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> ne;  // ggml order: ne[0] innermost (contiguous)
  const uint8_t* data = nullptr;
  int64_t nbytes = 0;
  std::string file;

  int64_t numel() const;
  std::string ne_str() const;  // "[ne0, ne1, ...]"
};

class GgufFile {
 public:
  // Opens `path`; for a split name (…-0000K-of-0000N.gguf) opens all N parts.
  // `memory`: file maps, or copies in huge-page memory (base/file.h).
  static GgufFile open(const std::string& path, FileMemory memory = FileMemory::kMapped);
  // Parses an in-memory image (tests / fuzzing); `name` is used in messages. The buffer must
  // outlive the GgufFile.
  static GgufFile parse(const uint8_t* data, size_t size, const std::string& name);

  const std::string& path() const { return path_; }
  const std::vector<std::string>& files() const { return files_; }
  uint32_t version() const { return version_; }
  int64_t alignment() const { return alignment_; }

  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  const GgufValue* find(const std::string& key) const;
  bool has(const std::string& key) const { return find(key) != nullptr; }
  // Typed getters: throw Error naming the file and key when absent or of another type.
  // Integers of any integer type are accepted when in range.
  int64_t get_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_float(const std::string& key) const;  // F32 / F64 (and integers)
  double get_float(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;
  std::vector<double> get_float_array(const std::string& key) const;
  const std::vector<std::string>& get_string_array(const std::string& key) const;

  const std::map<std::string, GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* find_tensor(const std::string& name) const;

  // Owns the mapped files (the tensors' data point into them).
  std::vector<std::shared_ptr<MappedFile>> maps;

 private:
  void parse_part(const uint8_t* data, size_t size, const std::string& name, bool first);
  [[noreturn]] void fail_key(const std::string& key, const std::string& what) const;
  std::string path_;
  std::vector<std::string> files_;
  uint32_t version_ = 0;
  int64_t alignment_ = 32;
  std::map<std::string, GgufValue> kv_;
  std::map<std::string, GgufTensor> tensors_;
};

// True when `path` names a GGUF file (by its .gguf suffix).
bool is_gguf_path(const std::string& path);

// ---- writing ----
struct GgufWriteTensor {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> ne;
  std::vector<uint8_t> bytes;  // exactly ggml_row_bytes(type, ne[0]) * rows
};

// One tensor's entry in a header (its data follows separately, padded to the alignment).
struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> ne;
  int64_t nbytes = 0;
};

// The header of a GGUF v3 file up to the start of the data (padding included); the data of
// tensor k then starts at the sum of the padded sizes of tensors 0..k-1.
std::string serialize_gguf_header(const std::vector<std::pair<std::string, GgufValue>>& metadata,
                                  const std::vector<GgufTensorInfo>& tensors, int64_t alignment = 32);

// Serialises a GGUF v3 image (metadata in the given order, tensors in the given order, data
// aligned to `alignment`, which is also written as general.alignment when not 32).
std::string serialize_gguf(const std::vector<std::pair<std::string, GgufValue>>& metadata,
                           const std::vector<GgufWriteTensor>& tensors, int64_t alignment = 32);

// Value constructors for the writer.
GgufValue gguf_u32(int64_t v);
GgufValue gguf_i32(int64_t v);
GgufValue gguf_f32(double v);
GgufValue gguf_bool(bool v);
GgufValue gguf_str(std::string v);
GgufValue gguf_i32_array(std::vector<int64_t> v);
GgufValue gguf_f32_array(std::vector<double> v);
GgufValue gguf_str_array(std::vector<std::string> v);

}  // namespace dsv4
