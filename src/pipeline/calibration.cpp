#include "qshard/pipeline/calibration.hpp"

#include "qshard/core/error.hpp"

namespace qshard {
namespace {

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

TokenSet random_tokens(std::int64_t rows, std::int64_t cols, std::int64_t vocab,
                       std::uint64_t seed) {
  TokenSet set{rows, cols, std::vector<std::int32_t>(static_cast<std::size_t>(rows * cols))};
  const auto v = static_cast<std::uint64_t>(vocab);
  for (std::size_t i = 0; i < set.ids.size(); ++i)
    set.ids[i] = static_cast<std::int32_t>(splitmix64(seed * 0x100000001b3ull + i) % v);
  return set;
}

}  // namespace

TokenSet load_calibration(const JobOptions& o, const ModelConfig& config) {
  require(o.seq_len <= config.max_position_embeddings, "seq_len ", o.seq_len,
          " exceeds the model's max_position_embeddings ", config.max_position_embeddings);
  if (o.calib.empty()) return random_tokens(o.samples, o.seq_len, config.vocab_size, o.seed);
  TokenSet set;
  if (o.calib_sampling == "rows") {
    // Rows are taken whole: an HDF5 dataset's, or those a raw file's name declares
    // (calib_128x256.i32); a raw file without one is cut into rows of seq_len.
    const TokenSet file = read_tokens(o.calib, o.seq_len);
    const std::int64_t row_length =
        file.cols != o.seq_len ? file.cols : row_length_in_name(o.calib).value_or(o.seq_len);
    require(row_length == o.seq_len, "calibration ", o.calib, " has rows of ", row_length,
            " tokens, but seq_len is ", o.seq_len, ": give --seq_len ", row_length,
            " to use whole rows, or --calib_sampling random to draw windows of ", o.seq_len,
            " tokens from it");
    require(file.rows >= o.samples, "calibration ", o.calib, " has ", file.rows, " rows of ",
            o.seq_len, " tokens, samples asks for ", o.samples);
    set = TokenSet{
        o.samples, o.seq_len,
        std::vector<std::int32_t>(file.ids.begin(), file.ids.begin() + o.samples * o.seq_len)};
  } else {
    const TokenSet stream = read_tokens(o.calib, 1);
    set = sample_windows(stream.ids, o.samples, o.seq_len, o.seed);
  }
  check_vocab(set, config.vocab_size, o.calib);
  return set;
}

std::int64_t unit_count(std::int64_t samples, std::int64_t batch_samples) {
  return (samples + batch_samples - 1) / batch_samples;
}

UnitRange units_of_rank(std::int64_t units, int rank, int ranks) {
  return {units * rank / ranks, units * (rank + 1) / ranks};
}

}  // namespace qshard
