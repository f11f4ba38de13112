// safetensors files: a validating, memory-mapped reader (single file or a sharded model
// directory with model.safetensors.index.json) and an atomic writer.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/dtype.h"
#include "base/file.h"

namespace dsv4 {

// A view of one stored tensor. `data` points into a mapped file owned by a TensorStore.
struct Tensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  std::string file;  // the file it came from (for messages)
  // GGUF views (model/gguf_model.cc): the ggml type of `data` (ops/ggml_types.h), else -1.
  // Such a tensor has the logical shape of the official layout; dtype is then U8.
  int32_t ggml_type = -1;

  int64_t numel() const;
  int ndim() const { return static_cast<int>(shape.size()); }
  int64_t dim(int i) const { return shape.at(static_cast<size_t>(i)); }
  bool empty() const { return data == nullptr && nbytes == 0 && name.empty(); }
  std::string shape_str() const;  // "[a, b]"
};

// All tensors of one or many safetensors files. Validates every header on open:
// header length, JSON, dtypes, shapes, offsets in range, sizes matching shape x dtype,
// no overlaps, no duplicate names. Any failure throws Error naming file and tensor.
class TensorStore {
 public:
  // A model directory: uses model.safetensors.index.json when present (and checks it
  // against the shards), else every *.safetensors file in the directory.
  // `memory`: file maps, or copies in huge-page memory (base/file.h).
  static TensorStore open_dir(const std::string& dir, FileMemory memory = FileMemory::kMapped);
  // One safetensors file.
  static TensorStore open_file(const std::string& path, FileMemory memory = FileMemory::kMapped);

  // Views into memory that `owners` keep alive (a GGUF file bound to the official names).
  static TensorStore from_views(std::vector<Tensor> tensors, std::vector<std::string> files,
                                std::vector<std::shared_ptr<const void>> owners);

  const Tensor* find(const std::string& name) const;
  const Tensor& get(const std::string& name) const;  // throws Error "missing tensor"
  const std::map<std::string, Tensor>& tensors() const { return tensors_; }
  const std::vector<std::string>& files() const { return files_; }

  // Reads an F32 tensor into a vector (checks dtype); I64 likewise.
  std::vector<float> read_f32(const std::string& name) const;
  std::vector<int64_t> read_i64(const std::string& name) const;

 private:
  void add_file(const std::string& path, FileMemory memory);
  std::vector<std::unique_ptr<MappedFile>> maps_;
  std::vector<std::string> files_;
  std::map<std::string, Tensor> tensors_;
  std::vector<std::shared_ptr<const void>> owners_;
};

// A tensor to write: raw little-endian bytes of dtype x shape.
struct TensorData {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;

  static TensorData f32(std::string name, std::vector<int64_t> shape, const float* values);
  static TensorData i64(std::string name, std::vector<int64_t> shape, const int64_t* values);
};

// Serialises tensors (in the given order) to the safetensors byte format.
std::string serialize_safetensors(const std::vector<TensorData>& tensors,
                                  const std::map<std::string, std::string>& metadata = {});
// Writes atomically (temp file + rename).
void write_safetensors(const std::string& path, const std::vector<TensorData>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace dsv4
