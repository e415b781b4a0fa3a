// libFuzzer target: the safetensors header parser (src/io/safetensors_header.cpp) on a whole file's
// bytes. Every span it accepts must lie inside the data section: each one is read (ASan checks).
#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_support.hpp"
#include "safetensors_header.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, const std::size_t size) {
  const std::span<const std::byte> file(reinterpret_cast<const std::byte*>(data), size);
  qshard::fuzz::refused_or_parsed([&] {
    const qshard::io_detail::SafetensorsHeader header =
        qshard::io_detail::parse_safetensors_header(file, "fuzz.safetensors");
    qshard::fuzz::check(header.data_offset <= size, "data section starts inside the file");
    unsigned sum = 0;
    for (const auto& [name, entry] : header.entries) {
      const std::span<const std::byte> bytes =
          file.subspan(header.data_offset + entry.begin, entry.end - entry.begin);
      for (const std::byte b : bytes) sum += std::to_integer<unsigned>(b);
    }
    static volatile unsigned sink;
    sink = sum;
  });
  return 0;
}
