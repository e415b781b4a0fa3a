// write_safetensors: header and data into PATH.tmp, renamed to PATH once complete.
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <system_error>
#include <utility>

#include "qshard/core/error.hpp"
#include "qshard/io/safetensors.hpp"

namespace qshard {
namespace {

// An output file under a temporary name: removed on destruction unless commit() renamed it.
class TemporaryOutput {
 public:
  explicit TemporaryOutput(std::filesystem::path path)
      : path_(std::move(path)), temporary_(path_.string() + ".tmp") {
    fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      throw Error(
          str("cannot write ", path_, ": cannot create ", temporary_, ": ", std::strerror(errno)));
    }
  }
  ~TemporaryOutput() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) {
      std::error_code ignored;
      std::filesystem::remove(temporary_, ignored);
    }
  }
  TemporaryOutput(const TemporaryOutput&) = delete;
  TemporaryOutput& operator=(const TemporaryOutput&) = delete;

  void write(std::span<const std::byte> bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw Error(str("cannot write ", path_, ": ", std::strerror(errno)));
      bytes = bytes.subspan(static_cast<std::size_t>(n));
    }
  }

  void commit() {
    if (::fsync(fd_) != 0) throw Error(str("cannot write ", path_, ": ", std::strerror(errno)));
    const int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) throw Error(str("cannot write ", path_, ": ", std::strerror(errno)));
    std::error_code error;
    std::filesystem::rename(temporary_, path_, error);
    if (error) throw Error(str("cannot rename ", temporary_, " to ", path_, ": ", error.message()));
    committed_ = true;
  }

 private:
  std::filesystem::path path_;
  std::filesystem::path temporary_;
  int fd_ = -1;
  bool committed_ = false;
};

std::string header_json(const std::filesystem::path& path, const std::vector<NamedTensor>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  std::set<std::string> seen;
  for (const NamedTensor& t : tensors) {
    require(!t.name.empty() && t.name != "__metadata__", "cannot write ", path,
            ": invalid tensor name '", t.name, "'");
    require(t.tensor != nullptr, "cannot write ", path, ": tensor '", t.name, "' is null");
    require(seen.insert(t.name).second, "cannot write ", path, ": duplicate tensor '", t.name, "'");
    const std::uint64_t size = t.tensor->bytes().size();
    require(size == static_cast<std::uint64_t>(t.tensor->numel()) * dtype_size(t.tensor->dtype()),
            "cannot write ", path, ": tensor '", t.name, "' holds ", size, " bytes for shape ",
            shape_string(t.tensor->shape()));
    header[t.name] = {{"dtype", std::string(dtype_name(t.tensor->dtype()))},
                      {"shape", t.tensor->shape()},
                      {"data_offsets", {offset, offset + size}}};
    offset += size;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data section starts 8-byte aligned
  return text;
}

}  // namespace

void write_safetensors(const std::filesystem::path& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::string header = header_json(path, tensors, metadata);
  std::array<std::byte, 8> length{};
  for (std::size_t i = 0; i < 8; ++i) {
    length[i] =
        static_cast<std::byte>((static_cast<std::uint64_t>(header.size()) >> (8 * i)) & 0xff);
  }
  TemporaryOutput out(path);
  out.write(length);
  out.write(std::as_bytes(std::span(header)));
  for (const NamedTensor& t : tensors) out.write(t.tensor->bytes());
  out.commit();
}

}  // namespace qshard
