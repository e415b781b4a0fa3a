#pragma once
// An advisory exclusive lock on a file (flock), held for the object's lifetime and released by the
// kernel when the process dies, so a killed job never leaves a stale lock.
#include <filesystem>
#include <optional>

namespace qshard {

class FileLock {
 public:
  // Creates `path` if needed and takes the lock without waiting; nullopt when another process
  // holds it. Throws naming the path when the file cannot be opened.
  static std::optional<FileLock> try_lock(const std::filesystem::path& path);
  ~FileLock();
  FileLock(FileLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  FileLock& operator=(FileLock&&) = delete;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace qshard
