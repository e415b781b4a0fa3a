#pragma once
// Token sets for calibration and evaluation: [samples, seq_len] int32 ids.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace qshard {

struct TokenSet {
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::vector<std::int32_t> ids;  // row-major

  std::span<const std::int32_t> row(std::int64_t r) const {
    return {ids.data() + r * cols, static_cast<std::size_t>(cols)};
  }
  // Rows [begin, end) as one contiguous span.
  std::span<const std::int32_t> rows_span(std::int64_t begin, std::int64_t end) const {
    return {ids.data() + begin * cols, static_cast<std::size_t>((end - begin) * cols)};
  }
};

// Raw little-endian int32 ids (as ../shared/data), cut into rows of `row_length`.
TokenSet read_tokens_i32(const std::filesystem::path& path, std::int64_t row_length);
// An HDF5 dataset of shape [samples, seq_len] and an integer type.
TokenSet read_tokens_hdf5(const std::filesystem::path& path, const std::string& dataset);
// The row length a raw token file's name declares: "calib_128x256.i32" holds 128 rows of 256
// tokens, when its size is 128 x 256 x 4 bytes; nullopt when the name declares none (or another
// size). Raw files have no header: this is how a caller can tell that rows would be re-cut.
std::optional<std::int64_t> row_length_in_name(const std::filesystem::path& path);
// Opens "FILE" (raw .i32 with `row_length`) or "FILE.h5:DATASET" / "FILE.h5" (dataset "tokens").
TokenSet read_tokens(const std::string& spec, std::int64_t row_length);
void write_tokens_hdf5(const std::filesystem::path& path, const std::string& dataset,
                       const TokenSet& set);

// n windows of seq_len tokens drawn from a stream with a seeded generator (std::mt19937_64 and
// an explicit, portable mapping), reproducibly on every platform.
TokenSet sample_windows(std::span<const std::int32_t> stream, std::int64_t n, std::int64_t seq_len,
                        std::uint64_t seed);
// Throws naming `source`, the row and column of the first id outside [0, vocab).
void check_vocab(const TokenSet& set, std::int64_t vocab, std::string_view source);
// FNV-1a 64 of the ids (little-endian bytes), recorded as the calibration hash.
std::uint64_t hash_tokens(const TokenSet& set);

}  // namespace qshard
