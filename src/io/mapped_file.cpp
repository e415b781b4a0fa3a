#include "mapped_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "qshard/core/error.hpp"

namespace qshard::io_detail {

MappedFile::MappedFile(const std::filesystem::path& path)
    : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
  if (fd_ < 0) {
    throw Error(str("cannot open ", path, ": ", std::strerror(errno)));
  }
  try {
    struct stat info {};
    if (::fstat(fd_, &info) != 0) {
      throw Error(str("cannot stat ", path, ": ", std::strerror(errno)));
    }
    require(S_ISREG(info.st_mode), path, " is not a regular file");
    size_ = static_cast<std::size_t>(info.st_size);
    if (size_ == 0) return;  // mmap refuses empty mappings; an empty span is the right view
    void* const data = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
    if (data == MAP_FAILED) {
      throw Error(str("cannot memory-map ", path, " (", size_, " bytes): ", std::strerror(errno)));
    }
    data_ = static_cast<const std::byte*>(data);
  } catch (...) {
    release();
    throw;
  }
}

void MappedFile::check_not_truncated(const std::filesystem::path& path) const {
  struct stat info {};
  if (::fstat(fd_, &info) != 0) {
    throw Error(str("cannot stat ", path, ": ", std::strerror(errno)));
  }
  const auto now = static_cast<std::size_t>(info.st_size);
  require(now >= size_, path, " is now ", now, " bytes but was ", size_,
          " when the job opened it: it was truncated while in use (it is read memory-mapped); "
          "restore it and run again");
}

MappedFile::~MappedFile() { release(); }

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      fd_(std::exchange(other.fd_, -1)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

void MappedFile::release() noexcept {
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
  if (fd_ >= 0) ::close(fd_);
  data_ = nullptr;
  size_ = 0;
  fd_ = -1;
}

}  // namespace qshard::io_detail
