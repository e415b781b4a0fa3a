// libFuzzer target: the raw token file reader (src/io/tokens.cpp). The first byte picks the row
// length; the rest is the file of little-endian int32 ids. Accepted sets go through what the jobs
// do with them: vocabulary check, hash, rows, windows. HDF5 token files are left out: mutated HDF5
// files crash libhdf5 1.10.8 itself within seconds (docs/RELIABILITY.md).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_support.hpp"
#include "qshard/io/tokens.hpp"

namespace {

void use(const qshard::TokenSet& set) {
  qshard::fuzz::check(set.rows >= 0 && set.cols >= 0 &&
                          set.ids.size() == static_cast<std::size_t>(set.rows * set.cols),
                      "rows x cols ids");
  static volatile std::uint64_t sink;
  sink = qshard::hash_tokens(set);
  qshard::fuzz::refused_or_parsed([&] { qshard::check_vocab(set, 512, "fuzz tokens"); });
  if (set.rows > 0 && set.cols > 0) {
    sink = static_cast<std::uint64_t>(set.row(set.rows - 1).back());
    const auto stream = set.rows_span(0, set.rows);
    const auto seq_len = std::min<std::int64_t>(set.cols, 64);
    sink = static_cast<std::uint64_t>(qshard::sample_windows(stream, 3, seq_len, 7).ids.back());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, const std::size_t size) {
  if (size == 0) return 0;
  const std::int64_t row_length = 1 + data[0] % 16;
  const qshard::fuzz::InputFile file(data + 1, size - 1, ".i32");
  qshard::fuzz::refused_or_parsed([&] { use(qshard::read_tokens(file.path(), row_length)); });
  return 0;
}
