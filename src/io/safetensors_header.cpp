#include "safetensors_header.hpp"

#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

#include "qshard/core/error.hpp"
#include "strict_json.hpp"

namespace qshard::io_detail {
namespace {

using nlohmann::json;

std::uint64_t read_le_u64(std::span<const std::byte> bytes) {
  std::uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | std::to_integer<std::uint64_t>(bytes[i]);
  return value;
}

// The context prefix of every message about one tensor.
std::string where(const std::filesystem::path& path, const std::string& tensor) {
  return str(path.string(), ": tensor '", tensor, "'");
}

const json& field(const json& entry, const char* name, const std::filesystem::path& path,
                  const std::string& tensor) {
  const auto it = entry.find(name);
  require(it != entry.end(), where(path, tensor), ": missing '", name, "'");
  return *it;
}

DType parse_entry_dtype(const json& value, const std::filesystem::path& path,
                        const std::string& tensor) {
  require(value.is_string(), where(path, tensor), ": 'dtype' must be a string, not ",
          json_type_name(value));
  const std::string name = value.get<std::string>();
  try {
    return parse_dtype(name);
  } catch (const Error& e) {
    throw Error(str(where(path, tensor), ": ", e.what()));
  }
}

Shape parse_entry_shape(const json& value, const std::filesystem::path& path,
                        const std::string& tensor) {
  require(value.is_array(), where(path, tensor), ": 'shape' must be an array, not ",
          json_type_name(value));
  Shape shape;
  shape.reserve(value.size());
  for (const json& dim : value) {
    require(dim.is_number_integer(), where(path, tensor), ": 'shape' must hold integers, found ",
            dim.dump());
    require(dim.is_number_unsigned() || dim.get<std::int64_t>() >= 0, where(path, tensor),
            ": negative dimension ", dim.dump(), " in 'shape' ", value.dump());
    require(!dim.is_number_unsigned() ||
                dim.get<std::uint64_t>() <= static_cast<std::uint64_t>(INT64_MAX),
            where(path, tensor), ": dimension ", dim.dump(), " is too large");
    shape.push_back(dim.get<std::int64_t>());
  }
  return shape;
}

std::uint64_t parse_offset(const json& value, const std::filesystem::path& path,
                           const std::string& tensor) {
  require(value.is_number_integer(), where(path, tensor),
          ": 'data_offsets' must hold integers, found ", value.dump());
  require(value.is_number_unsigned() || value.get<std::int64_t>() >= 0, where(path, tensor),
          ": negative offset ", value.dump(), " in 'data_offsets'");
  return value.get<std::uint64_t>();
}

// The byte size of `shape` × `dtype`, refusing products that overflow.
std::uint64_t byte_size(const Shape& shape, const DType dtype, const std::filesystem::path& path,
                        const std::string& tensor) {
  std::uint64_t bytes = dtype_size(dtype);
  for (const std::int64_t dim : shape) {
    const bool overflow = __builtin_mul_overflow(bytes, static_cast<std::uint64_t>(dim), &bytes);
    require(!overflow, where(path, tensor), ": shape ", shape_string(shape), " is too large");
  }
  return bytes;
}

HeaderEntry parse_entry(const json& entry, const std::filesystem::path& path,
                        const std::string& tensor, const std::uint64_t data_size) {
  require(entry.is_object(), where(path, tensor), ": header entry must be an object, not ",
          json_type_name(entry));
  HeaderEntry out;
  out.dtype = parse_entry_dtype(field(entry, "dtype", path, tensor), path, tensor);
  out.shape = parse_entry_shape(field(entry, "shape", path, tensor), path, tensor);
  const json& offsets = field(entry, "data_offsets", path, tensor);
  require(offsets.is_array() && offsets.size() == 2, where(path, tensor),
          ": 'data_offsets' must be an array of two integers, found ", offsets.dump());
  out.begin = parse_offset(offsets[0], path, tensor);
  out.end = parse_offset(offsets[1], path, tensor);
  require(out.begin <= out.end, where(path, tensor), ": data_offsets [", out.begin, ", ", out.end,
          "] begin after end");
  require(out.end <= data_size, where(path, tensor), ": data_offsets [", out.begin, ", ", out.end,
          "] extend beyond the data section of ", data_size,
          " bytes (offsets out of range, or the file is truncated)");
  const std::uint64_t expected = byte_size(out.shape, out.dtype, path, tensor);
  require(out.end - out.begin == expected, where(path, tensor), ": shape ", shape_string(out.shape),
          " of ", dtype_name(out.dtype), " needs ", expected, " bytes but data_offsets [",
          out.begin, ", ", out.end, "] span ", out.end - out.begin);
  return out;
}

std::map<std::string, std::string> parse_metadata(const json& value,
                                                  const std::filesystem::path& path) {
  require(value.is_object(), path.string(), ": '__metadata__' must be an object, not ",
          json_type_name(value));
  std::map<std::string, std::string> metadata;
  for (const auto& [key, item] : value.items()) {
    require(item.is_string(), path.string(), ": '__metadata__' value of '", key,
            "' must be a string, not ", json_type_name(item));
    metadata.emplace(key, item.get<std::string>());
  }
  return metadata;
}

// Spans may leave gaps but must not share bytes.
void check_overlaps(const std::map<std::string, HeaderEntry>& entries,
                    const std::filesystem::path& path) {
  std::vector<std::pair<const std::string*, const HeaderEntry*>> sorted;
  sorted.reserve(entries.size());
  for (const auto& [name, entry] : entries) sorted.emplace_back(&name, &entry);
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.second->begin != b.second->begin ? a.second->begin < b.second->begin
                                              : a.second->end < b.second->end;
  });
  for (std::size_t i = 1; i < sorted.size(); ++i) {
    const auto& [prev_name, prev] = sorted[i - 1];
    const auto& [name, entry] = sorted[i];
    require(entry->begin >= prev->end, path.string(), ": tensor '", *name, "' data_offsets [",
            entry->begin, ", ", entry->end, "] overlap tensor '", *prev_name, "' [", prev->begin,
            ", ", prev->end, "]");
  }
}

}  // namespace

SafetensorsHeader parse_safetensors_header(const std::span<const std::byte> file,
                                           const std::filesystem::path& path) {
  require(file.size() >= 8, path.string(), ": file of ", file.size(),
          " bytes is shorter than the 8-byte header length (not a safetensors file)");
  const std::uint64_t header_size = read_le_u64(file.first(8));
  require(header_size <= file.size() - 8, path.string(), ": header length ", header_size,
          " extends beyond the file of ", file.size(), " bytes");
  const std::string_view text(reinterpret_cast<const char*>(file.data() + 8), header_size);
  const json header = parse_json_strict(text, str(path.string(), ": header"), "tensor");
  require(header.is_object(), path.string(), ": header must be a JSON object, not ",
          json_type_name(header));

  SafetensorsHeader out;
  out.data_offset = 8 + header_size;
  const std::uint64_t data_size = file.size() - out.data_offset;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      out.metadata = parse_metadata(value, path);
      continue;
    }
    out.entries.emplace(name, parse_entry(value, path, name, data_size));
  }
  check_overlaps(out.entries, path);
  return out;
}

}  // namespace qshard::io_detail
