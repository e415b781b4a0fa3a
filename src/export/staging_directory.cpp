// StagingDirectory: DIR.tmp renamed to DIR when complete.
#include "qshard/export/staging_directory.hpp"

#include <system_error>

#include "qshard/core/error.hpp"

namespace qshard {
namespace fs = std::filesystem;

namespace {

bool is_empty_directory(const fs::path& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) && fs::is_empty(path, ec) && !ec;
}

fs::path with_suffix(const fs::path& path, const char* suffix) {
  fs::path out = path;
  out += suffix;
  return out;
}

}  // namespace

StagingDirectory::StagingDirectory(fs::path target, bool force) : target_(std::move(target)) {
  require(!target_.empty(), "output directory: empty path");
  if (target_.filename().empty()) target_ = target_.parent_path();  // "out/" -> "out"
  staging_ = with_suffix(target_, ".tmp");
  std::error_code ec;
  if (fs::exists(target_, ec)) {
    require(fs::is_directory(target_, ec), "output ", target_, " exists and is not a directory");
    require(force || is_empty_directory(target_), "output directory ", target_,
            " exists and is not empty (give --force to replace it)");
  }
  fs::remove_all(staging_, ec);
  ec.clear();
  fs::create_directory(staging_, ec);
  require(!ec, "cannot create output directory ", staging_, ": ", ec.message());
}

StagingDirectory::~StagingDirectory() {
  if (committed_) return;
  std::error_code ignored;
  fs::remove_all(staging_, ignored);
}

void StagingDirectory::commit() {
  require(!committed_, "output directory ", target_, " committed twice");
  std::error_code ec;
  fs::path old;
  if (fs::exists(target_, ec)) {  // empty, or replaced with --force: moved aside, then removed
    old = with_suffix(target_, ".old");
    fs::remove_all(old, ec);
    fs::rename(target_, old, ec);
    require(!ec, "cannot move the old ", target_, " aside: ", ec.message());
  }
  fs::rename(staging_, target_, ec);
  require(!ec, "cannot rename ", staging_, " to ", target_, ": ", ec.message());
  committed_ = true;
  if (!old.empty()) fs::remove_all(old, ec);
}

}  // namespace qshard
