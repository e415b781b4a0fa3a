#pragma once
// File-system facts and durability for outputs: free space before a large write, fsync before a
// rename makes a file visible. Failures throw qshard::Error with the path and the OS reason.
#include <cstdint>
#include <filesystem>
#include <string_view>

namespace qshard {

// Bytes an unprivileged process may still write on the file system holding `path` (statvfs).
std::uintmax_t available_bytes(const std::filesystem::path& path);

// Throws unless the file system holding `path` (an existing directory, or a file's directory) has
// `needed` bytes available: "not enough space for WHAT at PATH: NEEDED bytes needed, FREE free".
void require_space(const std::filesystem::path& path, std::uintmax_t needed, std::string_view what);

// Writes the file's data and metadata through to its device (fsync): write errors the kernel
// deferred (a full disk on NFS or Lustre, EIO) surface here.
void sync_file(const std::filesystem::path& path);

}  // namespace qshard
