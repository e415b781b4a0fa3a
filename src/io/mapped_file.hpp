#pragma once
// A read-only memory mapping of a whole file, unmapped and closed by its destructor.
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

 private:
  void release() noexcept;

  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace qshard::io_detail
