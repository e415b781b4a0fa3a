#include "qshard/quant/packing.hpp"

#include <algorithm>
#include <thread>
#include <vector>

#include "qshard/core/dtype.hpp"
#include "qshard/core/error.hpp"
#include "qshard/core/parallel.hpp"

namespace qshard {
namespace {

void check_bits(int bits) {
  require(bits >= 1 && bits <= 8, "packing: unsupported bit width ", bits);
}

// Writes `value` (b bits) at stream position k of the column `column` of `packed` [words, cols].
void put(Matrix<std::int32_t>& packed, std::int64_t column, std::int64_t k, int bits,
         std::uint32_t value) {
  const std::int64_t bit = k * bits;
  const std::int64_t word = bit / 32;
  const int shift = static_cast<int>(bit % 32);
  auto* w = reinterpret_cast<std::uint32_t*>(&packed(word, column));
  *w |= value << shift;
  if (shift + bits > 32) {
    auto* next = reinterpret_cast<std::uint32_t*>(&packed(word + 1, column));
    *next |= value >> (32 - shift);
  }
}

std::uint32_t get(const Matrix<std::int32_t>& packed, std::int64_t column, std::int64_t k,
                  int bits) {
  const std::int64_t bit = k * bits;
  const std::int64_t word = bit / 32;
  const int shift = static_cast<int>(bit % 32);
  const std::uint32_t mask = (1u << bits) - 1u;
  std::uint64_t v = static_cast<std::uint32_t>(packed(word, column)) >> shift;
  if (shift + bits > 32)
    v |= static_cast<std::uint64_t>(static_cast<std::uint32_t>(packed(word + 1, column)))
         << (32 - shift);
  return static_cast<std::uint32_t>(v) & mask;
}

}  // namespace

std::int64_t packed_words(std::int64_t values, int bits) { return (values * bits + 31) / 32; }

// Output columns in blocks of 64 (one block per task): each column's codes are one contiguous
// bit stream, built in a local buffer and stored into its column of the packed words; a block's
// stores share cache lines. Pure data movement, so any thread count gives the same words.
constexpr std::int64_t kColumnBlock = 64;

int packing_threads() {
  return static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 32u));
}

Matrix<std::int32_t> pack_qweight(const Matrix<std::uint8_t>& codes, int bits) {
  check_bits(bits);
  const std::int64_t out = codes.rows(), in = codes.cols(), words = packed_words(in, bits);
  Matrix<std::int32_t> packed(words, out, 0);
  const std::uint32_t mask = (1u << bits) - 1u;
  const auto blocks = static_cast<std::size_t>((out + kColumnBlock - 1) / kColumnBlock);
  parallel_for(blocks, packing_threads(), [&](std::size_t b) {
    std::vector<std::uint32_t> stream(static_cast<std::size_t>(words) + 1);
    const std::int64_t first = static_cast<std::int64_t>(b) * kColumnBlock;
    for (std::int64_t o = first; o < std::min(out, first + kColumnBlock); ++o) {
      std::fill(stream.begin(), stream.end(), 0u);
      const std::uint8_t* column = &codes(o, 0);
      for (std::int64_t k = 0; k < in; ++k) {
        const std::uint32_t value = column[k];
        require(value <= mask, "pack_qweight: code ", value, " exceeds ", bits, " bits");
        const std::int64_t bit = k * bits;
        const auto word = static_cast<std::size_t>(bit / 32);
        const int shift = static_cast<int>(bit % 32);
        stream[word] |= value << shift;
        if (shift + bits > 32) stream[word + 1] |= value >> (32 - shift);
      }
      for (std::int64_t w = 0; w < words; ++w)
        packed(w, o) = static_cast<std::int32_t>(stream[static_cast<std::size_t>(w)]);
    }
  });
  return packed;
}

Matrix<std::uint8_t> unpack_qweight(const Matrix<std::int32_t>& packed, int bits, std::int64_t rows,
                                    std::int64_t cols) {
  check_bits(bits);
  require(packed.rows() == packed_words(cols, bits) && packed.cols() == rows,
          "unpack_qweight: packed shape [", packed.rows(), ", ", packed.cols(), "] does not hold ",
          rows, " x ", cols, " codes of ", bits, " bits");
  Matrix<std::uint8_t> codes(rows, cols);
  const auto blocks = static_cast<std::size_t>((rows + kColumnBlock - 1) / kColumnBlock);
  parallel_for(blocks, packing_threads(), [&](std::size_t b) {
    const std::int64_t first = static_cast<std::int64_t>(b) * kColumnBlock;
    for (std::int64_t o = first; o < std::min(rows, first + kColumnBlock); ++o)
      for (std::int64_t k = 0; k < cols; ++k)
        codes(o, k) = static_cast<std::uint8_t>(get(packed, o, k, bits));
  });
  return codes;
}

Matrix<std::int32_t> pack_qzeros(const Matrix<std::int32_t>& zeros, int bits, int offset) {
  check_bits(bits);
  const std::int64_t out = zeros.rows(), groups = zeros.cols();
  // Transposed layout: [groups, words over out]; pack each group's row of zeros as a stream.
  Matrix<std::int32_t> packed_t(packed_words(out, bits), groups, 0);
  const std::uint32_t mask = (1u << bits) - 1u;
  for (std::int64_t g = 0; g < groups; ++g)
    for (std::int64_t o = 0; o < out; ++o)
      put(packed_t, g, o, bits, static_cast<std::uint32_t>(zeros(o, g) - offset) & mask);
  Matrix<std::int32_t> packed(groups, packed_t.rows());
  for (std::int64_t w = 0; w < packed_t.rows(); ++w)
    for (std::int64_t g = 0; g < groups; ++g) packed(g, w) = packed_t(w, g);
  return packed;
}

Matrix<std::int32_t> unpack_qzeros(const Matrix<std::int32_t>& packed, int bits, std::int64_t rows,
                                   std::int64_t groups, int offset) {
  check_bits(bits);
  require(packed.rows() == groups && packed.cols() == packed_words(rows, bits),
          "unpack_qzeros: packed shape [", packed.rows(), ", ", packed.cols(), "] does not hold ",
          groups, " x ", rows, " zeros of ", bits, " bits");
  Matrix<std::int32_t> packed_t(packed.cols(), groups);
  for (std::int64_t g = 0; g < groups; ++g)
    for (std::int64_t w = 0; w < packed.cols(); ++w) packed_t(w, g) = packed(g, w);
  const std::int32_t modulus = 1 << bits;
  Matrix<std::int32_t> zeros(rows, groups);
  for (std::int64_t g = 0; g < groups; ++g)
    for (std::int64_t o = 0; o < rows; ++o)
      zeros(o, g) = (static_cast<std::int32_t>(get(packed_t, g, o, bits)) + offset) % modulus;
  return zeros;
}

Matrix<std::uint16_t> pack_scales_f16(const MatrixF& scales) {
  Matrix<std::uint16_t> packed(scales.cols(), scales.rows());
  for (std::int64_t r = 0; r < scales.rows(); ++r)
    for (std::int64_t g = 0; g < scales.cols(); ++g) packed(g, r) = f32_to_f16(scales(r, g));
  return packed;
}

MatrixF unpack_scales_f16(const Matrix<std::uint16_t>& packed) {
  MatrixF scales(packed.cols(), packed.rows());
  for (std::int64_t g = 0; g < packed.rows(); ++g)
    for (std::int64_t r = 0; r < packed.cols(); ++r) scales(r, g) = f16_to_f32(packed(g, r));
  return scales;
}

}  // namespace qshard
