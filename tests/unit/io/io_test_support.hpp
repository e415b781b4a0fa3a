#pragma once
// Helpers of the io tests: a temporary directory and writers of raw (possibly broken) files.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "qshard/core/error.hpp"

namespace qshard::test {

// A fresh directory under the system temporary directory, removed with its contents.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "qshard-io-XXXXXX").string();
    const char* made = ::mkdtemp(pattern.data());
    if (made == nullptr) throw Error("mkdtemp failed");
    path_ = made;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

inline void write_bytes(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw Error(str("cannot write test file ", path));
}

// A safetensors file from raw parts: the 8-byte little-endian length of `header` (or
// `declared_length` when given), the header text, then `data_size` bytes of data.
inline void write_raw_safetensors(const std::filesystem::path& path, std::string_view header,
                                  std::size_t data_size, std::int64_t declared_length = -1) {
  const std::uint64_t length =
      declared_length >= 0 ? static_cast<std::uint64_t>(declared_length) : header.size();
  std::string bytes;
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((length >> (8 * i)) & 0xff));
  bytes.append(header);
  bytes.append(data_size, '\0');
  write_bytes(path, bytes);
}

// Runs `action`, which must throw qshard::Error with every one of `parts` in its message.
template <typename Action>
void expect_error(Action&& action, std::initializer_list<std::string_view> parts) {
  try {
    action();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    const std::string message = e.what();
    for (const std::string_view part : parts) {
      EXPECT_NE(message.find(part), std::string::npos)
          << "message lacks '" << part << "': " << message;
    }
  }
}

}  // namespace qshard::test
