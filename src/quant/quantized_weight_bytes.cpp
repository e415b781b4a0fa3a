#include "qshard/quant/quantized_weight_bytes.hpp"

#include <cstdint>
#include <cstring>

#include "qshard/core/error.hpp"

namespace qshard {
namespace {

template <typename T>
void put(std::vector<std::byte>& out, const T& value) {
  const auto* p = reinterpret_cast<const std::byte*>(&value);
  out.insert(out.end(), p, p + sizeof(T));
}
template <typename T>
void put_span(std::vector<std::byte>& out, std::span<const T> values) {
  const auto* p = reinterpret_cast<const std::byte*>(values.data());
  out.insert(out.end(), p, p + values.size_bytes());
}
void take(std::span<const std::byte> bytes, std::size_t& offset, void* dst, std::size_t n) {
  require(offset + n <= bytes.size(), "tile exchange: truncated message");
  std::memcpy(dst, bytes.data() + offset, n);
  offset += n;
}
template <typename T>
T get(std::span<const std::byte> bytes, std::size_t& offset) {
  T value;
  take(bytes, offset, &value, sizeof(T));
  return value;
}
template <typename T>
void get_span(std::span<const std::byte> bytes, std::size_t& offset, std::span<T> out) {
  take(bytes, offset, out.data(), out.size_bytes());
}

}  // namespace

void write_quantized(const QuantizedWeight& q, std::vector<std::byte>& out) {
  put(out, static_cast<std::int32_t>(q.bits));
  put(out, q.group_size);
  put(out, q.rows());
  put(out, q.cols());
  put(out, q.groups());
  put_span<std::uint8_t>(out, q.codes.values());
  put_span<float>(out, q.scales.values());
  put_span<std::int32_t>(out, q.zeros.values());
  put_span<std::int32_t>(out, q.g_idx);
}

QuantizedWeight read_quantized(std::span<const std::byte> bytes, std::size_t& offset) {
  const auto bits = get<std::int32_t>(bytes, offset);
  const auto group_size = get<std::int64_t>(bytes, offset);
  const auto rows = get<std::int64_t>(bytes, offset);
  const auto cols = get<std::int64_t>(bytes, offset);
  const auto groups = get<std::int64_t>(bytes, offset);
  require(
      rows >= 0 && cols >= 0 && groups >= 0 &&
          static_cast<std::size_t>(rows * (cols + 8 * groups) + 4 * cols) <= bytes.size() - offset,
      "tile exchange: corrupt message ([", rows, ", ", cols, "], ", groups, " groups)");
  // g_idx is read over the sequential one allocate() starts with.
  QuantizedWeight q = QuantizedWeight::allocate(bits, group_size, rows, cols, groups);
  get_span<std::uint8_t>(bytes, offset, q.codes.values());
  get_span<float>(bytes, offset, q.scales.values());
  get_span<std::int32_t>(bytes, offset, q.zeros.values());
  get_span<std::int32_t>(bytes, offset, q.g_idx);
  return q;
}

}  // namespace qshard
