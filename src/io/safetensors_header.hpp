#pragma once
// Parsing and validation of a safetensors header against the bytes of its file.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>

#include "qshard/core/tensor.hpp"

namespace qshard::io_detail {

struct HeaderEntry {
  DType dtype = DType::F32;
  Shape shape;
  std::uint64_t begin = 0;  // byte offsets relative to the start of the data section
  std::uint64_t end = 0;
};

struct SafetensorsHeader {
  std::map<std::string, HeaderEntry> entries;
  std::map<std::string, std::string> metadata;
  std::size_t data_offset = 0;  // 8 + header length
};

// Validates everything about the file's structure: header length, JSON, entry fields and their
// types, dtypes, shapes, offsets within the data section, sizes, overlaps, duplicate names.
// Every error names `path` and, where there is one, the tensor.
SafetensorsHeader parse_safetensors_header(std::span<const std::byte> file,
                                           const std::filesystem::path& path);

}  // namespace qshard::io_detail
