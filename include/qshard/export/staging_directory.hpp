#pragma once
// An output directory that appears complete or not at all: its files are written into DIR.tmp,
// which commit() renames to DIR. Destroyed without commit(), DIR.tmp is removed.
#include <filesystem>

namespace qshard {

class StagingDirectory {
 public:
  // Refuses an existing `target` that is not an empty directory unless `force` (then the old
  // contents are replaced at commit). Creates DIR.tmp (removing a stale one first).
  StagingDirectory(std::filesystem::path target, bool force);
  ~StagingDirectory();
  StagingDirectory(const StagingDirectory&) = delete;
  StagingDirectory& operator=(const StagingDirectory&) = delete;

  const std::filesystem::path& path() const { return staging_; }
  const std::filesystem::path& target() const { return target_; }
  void commit();

 private:
  std::filesystem::path target_;
  std::filesystem::path staging_;
  bool committed_ = false;
};

}  // namespace qshard
