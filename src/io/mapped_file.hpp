#pragma once
// A read-only memory mapping of a whole file, unmapped and closed by its destructor. The file stays
// open so that its size can be checked again before reads: a file truncated while mapped would
// otherwise end the process with SIGBUS at the first read past its new end.
#include <cstddef>
#include <filesystem>
#include <span>

namespace qshard::io_detail {

class MappedFile {
 public:
  // Throws qshard::Error naming the file when it cannot be opened, sized or mapped.
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  std::size_t size() const { return size_; }
  // Throws naming `path` when the file is now shorter than when it was mapped (fstat of the open
  // file, so a file replaced by rename, whose old data the mapping keeps, is not at fault).
  void check_not_truncated(const std::filesystem::path& path) const;

 private:
  void release() noexcept;

  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  int fd_ = -1;
};

}  // namespace qshard::io_detail
