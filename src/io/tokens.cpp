#include "qshard/io/tokens.hpp"

#include <algorithm>
#include <fstream>
#include <random>

#include "qshard/core/error.hpp"
#include "qshard/core/fnv1a.hpp"
#include "qshard/io/hdf5.hpp"

namespace qshard {

TokenSet read_tokens_i32(const std::filesystem::path& path, std::int64_t row_length) {
  require(row_length > 0, "row length must be positive (got ", row_length, ")");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  require(in.good(), "cannot open token file ", path);
  const auto bytes = static_cast<std::int64_t>(in.tellg());
  require(
      bytes % (4 * row_length) == 0, "token file ", path, " has ", bytes,
      " bytes, not whole rows: its size must be a multiple of 4 (int32 ids) and of 4 x row length ",
      row_length, " = ", 4 * row_length, " bytes");
  TokenSet set{bytes / 4 / row_length, row_length,
               std::vector<std::int32_t>(static_cast<std::size_t>(bytes / 4))};
  in.seekg(0);
  in.read(reinterpret_cast<char*>(set.ids.data()), bytes);  // little-endian host (x86-64, aarch64)
  require(in.good(), "cannot read token file ", path);
  return set;
}

TokenSet read_tokens_hdf5(const std::filesystem::path& path, const std::string& dataset) {
  const h5::File file = h5::File::open_read(path);
  const h5::Group root = file.root();
  require(root.contains(dataset), path, ": no dataset '", dataset, "'");
  const h5::DatasetInfo info = root.info(dataset);
  require(info.type_class == H5T_INTEGER, path, ":", dataset, " is not an integer dataset");
  require(info.shape.size() == 2, path, ":", dataset, " must be [samples, seq_len], got ",
          info.shape.size(), " dimensions");
  const std::vector<std::int64_t> ids = root.read<std::int64_t>(dataset);
  TokenSet set{info.shape[0], info.shape[1], {}};
  set.ids.reserve(ids.size());
  for (const std::int64_t id : ids) {
    require(id >= INT32_MIN && id <= INT32_MAX, path, ":", dataset, " has id ", id,
            " beyond int32");
    set.ids.push_back(static_cast<std::int32_t>(id));
  }
  return set;
}

std::optional<std::int64_t> row_length_in_name(const std::filesystem::path& path) {
  // The stem ends in ROWSxCOLS, after the start or a non-digit.
  const std::string stem = path.stem().string();
  const std::size_t x = stem.rfind('x');
  if (x == std::string::npos || x == 0 || x + 1 == stem.size()) return std::nullopt;
  const auto digits = [](std::string_view s) {
    return !s.empty() && s.size() < 10 &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  std::size_t begin = x;
  while (begin > 0 && stem[begin - 1] >= '0' && stem[begin - 1] <= '9') --begin;
  const std::string rows = stem.substr(begin, x - begin), cols = stem.substr(x + 1);
  if (!digits(rows) || !digits(cols)) return std::nullopt;
  std::error_code error;
  const std::uintmax_t bytes = std::filesystem::file_size(path, error);
  const std::int64_t r = std::stoll(rows), c = std::stoll(cols);
  if (error || c == 0 || bytes != static_cast<std::uintmax_t>(r * c * 4)) return std::nullopt;
  return c;
}

TokenSet read_tokens(const std::string& spec, std::int64_t row_length) {
  // "FILE.h5:DATASET", or a whole "FILE.h5" / "FILE.hdf5" (dataset "tokens"); anything else is raw.
  const std::size_t colon = spec.find(".h5:");
  if (colon != std::string::npos)
    return read_tokens_hdf5(spec.substr(0, colon + 3), spec.substr(colon + 4));
  const std::filesystem::path path(spec);
  if (path.extension() == ".h5" || path.extension() == ".hdf5")
    return read_tokens_hdf5(path, "tokens");
  return read_tokens_i32(path, row_length);
}

void write_tokens_hdf5(const std::filesystem::path& path, const std::string& dataset,
                       const TokenSet& set) {
  const h5::File file = h5::File::create(path);
  file.root().write<std::int32_t>(dataset, set.ids, {set.rows, set.cols});
}

TokenSet sample_windows(std::span<const std::int32_t> stream, std::int64_t n, std::int64_t seq_len,
                        std::uint64_t seed) {
  require(seq_len > 0 && n > 0, "sample_windows: n and seq_len must be positive");
  const auto length = static_cast<std::int64_t>(stream.size());
  require(length >= seq_len, "token stream of ", length, " ids is shorter than seq_len ", seq_len);
  const auto starts = static_cast<std::uint64_t>(length - seq_len + 1);
  std::mt19937_64 rng(seed);
  // Rejection sampling on raw 64-bit outputs: the same windows on every platform.
  const std::uint64_t limit = UINT64_MAX - UINT64_MAX % starts;
  TokenSet set{n, seq_len, std::vector<std::int32_t>(static_cast<std::size_t>(n * seq_len))};
  for (std::int64_t i = 0; i < n; ++i) {
    std::uint64_t x = rng();
    while (x >= limit) x = rng();
    const auto start = static_cast<std::int64_t>(x % starts);
    std::copy(stream.begin() + start, stream.begin() + start + seq_len,
              set.ids.begin() + i * seq_len);
  }
  return set;
}

void check_vocab(const TokenSet& set, std::int64_t vocab, std::string_view source) {
  for (std::int64_t r = 0; r < set.rows; ++r)
    for (std::int64_t c = 0; c < set.cols; ++c) {
      const std::int32_t id = set.ids[static_cast<std::size_t>(r * set.cols + c)];
      require(id >= 0 && id < vocab, "token id ", id, " at row ", r, ", column ", c, " of ",
              source.empty() ? std::string_view("calibration tokens") : source,
              " is outside the vocabulary [0, ", vocab, ")");
    }
}

std::uint64_t hash_tokens(const TokenSet& set) {
  // The ids' little-endian bytes, as stored in .i32 files.
  Fnv1a hash;
  for (const std::int32_t id : set.ids) {
    const auto u = static_cast<std::uint32_t>(id);
    const std::byte bytes[4] = {std::byte(u & 0xffu), std::byte((u >> 8) & 0xffu),
                                std::byte((u >> 16) & 0xffu), std::byte(u >> 24)};
    hash.add(bytes);
  }
  return hash.value();
}

}  // namespace qshard
