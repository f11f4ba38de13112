// Files: read-only memory maps, whole-file reads, atomic writes (temp file + rename).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dsv4 {

// How a whole file is put in memory: a read-only map of the file (pages shared with the page
// cache, loaded on first touch), or a read-only copy in anonymous memory backed by transparent
// huge pages where the kernel allows (`--no-mmap`: the whole file read at load and its size in
// RAM, but a 2 MiB page covers 512 x the bytes of a 4 KiB one, so streaming the weights misses
// the TLB far less).
enum class FileMemory { kMapped, kHugePageCopy };

// A read-only view of a whole file (FileMemory). Move-only; released on destruction.
class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::string& path, FileMemory memory = FileMemory::kMapped);  // throws Error naming the path
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
  void copy_in(int fd);  // kHugePageCopy
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  void* alloc_ = nullptr;  // kHugePageCopy: the anonymous mapping (data_ is inside it)
  size_t alloc_size_ = 0;
};

std::string read_file(const std::string& path);  // throws Error naming the path
bool file_exists(const std::string& path);

// Writes `bytes` to `path` atomically: a temp file in the same directory (PATH.tmp.PID), fsync,
// rename, fsync of the directory.
void write_file_atomic(const std::string& path, std::string_view bytes);

}  // namespace dsv4
