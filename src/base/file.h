// Files: read-only memory maps, whole-file reads, atomic writes (temp file + rename).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dsv4 {

// A read-only memory map of a whole file. Move-only; unmaps on destruction.
class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::string& path);  // throws Error naming the path
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  void reset();
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

std::string read_file(const std::string& path);  // throws Error naming the path
bool file_exists(const std::string& path);

// Writes `bytes` to `path` atomically: a temp file in the same directory (PATH.tmp.PID), fsync,
// rename, fsync of the directory.
void write_file_atomic(const std::string& path, std::string_view bytes);

}  // namespace dsv4
