#pragma once
// Reads a whole file of raw little-endian values (reference tokens and logits of the tests).
#include <filesystem>
#include <fstream>
#include <vector>

namespace qshard::test {

template <typename T>
std::vector<T> read_raw(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  std::vector<T> out(static_cast<std::size_t>(in.tellg()) / sizeof(T));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(out.data()),
          static_cast<std::streamsize>(out.size() * sizeof(T)));
  return out;
}

}  // namespace qshard::test
