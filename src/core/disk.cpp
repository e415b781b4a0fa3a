#include "qshard/core/disk.hpp"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "qshard/core/error.hpp"

namespace qshard {
namespace {

// The directory whose file system receives `path` (the path itself when it is a directory).
std::filesystem::path directory_of(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return path;
  const std::filesystem::path parent = std::filesystem::absolute(path, ec).parent_path();
  return parent.empty() ? std::filesystem::path(".") : parent;
}

}  // namespace

std::uintmax_t available_bytes(const std::filesystem::path& path) {
  const std::filesystem::path dir = directory_of(path);
  struct statvfs fs {};
  if (::statvfs(dir.c_str(), &fs) != 0)
    throw Error(str("cannot query the free space of ", dir, ": ", std::strerror(errno)));
  return static_cast<std::uintmax_t>(fs.f_bavail) * static_cast<std::uintmax_t>(fs.f_frsize);
}

void require_space(const std::filesystem::path& path, std::uintmax_t needed,
                   std::string_view what) {
  const std::uintmax_t available = available_bytes(path);
  require(available >= needed, "not enough space for ", what, " at ", path, ": ", needed,
          " bytes needed, ", available, " free on its file system (", directory_of(path),
          "); free space or write elsewhere");
}

void sync_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(str("cannot open ", path, " to sync it: ", std::strerror(errno)));
  const int synced = ::fsync(fd);
  const int reason = errno;
  ::close(fd);
  if (synced != 0) throw Error(str("cannot write ", path, " to disk: ", std::strerror(reason)));
}

}  // namespace qshard
