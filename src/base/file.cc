#include "base/file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "base/error.h"

namespace dsv4 {

MappedFile::MappedFile(const std::string& path, FileMemory memory) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    throw Error(path + ": cannot stat: " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(path + ": not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0 && memory == FileMemory::kHugePageCopy) {
    try {
      copy_in(fd);
    } catch (...) {
      ::close(fd);
      throw;
    }
  } else if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      throw Error(path + ": cannot mmap: " + std::strerror(e));
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
}

// The copy starts on a 2 MiB boundary of an anonymous mapping, so that every whole 2 MiB of it
// can be one huge page (madvise is a hint: without THP the copy works on 4 KiB pages), and is
// made read-only once read, as a file map is.
void MappedFile::copy_in(int fd) {
  constexpr size_t kHuge = size_t{2} << 20;
  alloc_size_ = size_ + kHuge;
  void* p = ::mmap(nullptr, alloc_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    alloc_size_ = 0;
    throw Error(path_ + ": cannot allocate " + std::to_string(size_) + " bytes to copy it into memory: " + std::strerror(errno));
  }
  alloc_ = p;
  uint8_t* a = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1));
  ::madvise(a, size_, MADV_HUGEPAGE);
  size_t done = 0;
  while (done < size_) {
    const ssize_t n = ::pread(fd, a + done, std::min<size_t>(size_ - done, size_t{1} << 30), static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = n < 0 ? std::strerror(errno) : "the file ended early";
      ::munmap(alloc_, alloc_size_);
      alloc_ = nullptr;
      alloc_size_ = 0;
      throw Error(path_ + ": read error at byte " + std::to_string(done) + " of " + std::to_string(size_) + ": " + why);
    }
    done += static_cast<size_t>(n);
  }
  ::mprotect(a, size_, PROT_READ);
  data_ = a;
}

MappedFile::~MappedFile() { reset(); }

void MappedFile::reset() {
  if (alloc_ != nullptr) {
    ::munmap(alloc_, alloc_size_);
  } else if (data_ != nullptr) {
    ::munmap(const_cast<uint8_t*>(data_), size_);
  }
  data_ = nullptr;
  size_ = 0;
  alloc_ = nullptr;
  alloc_size_ = 0;
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)), data_(other.data_), size_(other.size_), alloc_(other.alloc_), alloc_size_(other.alloc_size_) {
  other.data_ = nullptr;
  other.size_ = 0;
  other.alloc_ = nullptr;
  other.alloc_size_ = 0;
}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    reset();
    path_ = std::move(other.path_);
    data_ = other.data_;
    size_ = other.size_;
    alloc_ = other.alloc_;
    alloc_size_ = other.alloc_size_;
    other.data_ = nullptr;
    other.size_ = 0;
    other.alloc_ = nullptr;
    other.alloc_size_ = 0;
  }
  return *this;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open: " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(path + ": read error");
  return ss.str();
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(path + ": cannot create temp file: " + std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw Error(path + ": write failed: " + std::strerror(e));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw Error(path + ": write failed: " + std::strerror(e));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw Error(path + ": cannot rename temp file: " + std::strerror(e));
  }
  // Make the rename itself durable (best effort: some file systems refuse fsync on a directory).
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace dsv4
