#include "qshard/quant/packing.hpp"

#include "qshard/core/dtype.hpp"
#include "qshard/core/error.hpp"

namespace qshard {
namespace {

std::int64_t words_for(std::int64_t values, int bits) { return (values * bits + 31) / 32; }

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

Matrix<std::int32_t> pack_qweight(const Matrix<std::uint8_t>& codes, int bits) {
  check_bits(bits);
  const std::int64_t out = codes.rows(), in = codes.cols();
  Matrix<std::int32_t> packed(words_for(in, bits), out, 0);
  const std::uint32_t mask = (1u << bits) - 1u;
  for (std::int64_t o = 0; o < out; ++o)
    for (std::int64_t k = 0; k < in; ++k) {
      require(codes(o, k) <= mask, "pack_qweight: code ", int(codes(o, k)), " exceeds ", bits,
              " bits");
      put(packed, o, k, bits, codes(o, k));
    }
  return packed;
}

Matrix<std::uint8_t> unpack_qweight(const Matrix<std::int32_t>& packed, int bits, std::int64_t rows,
                                    std::int64_t cols) {
  check_bits(bits);
  require(packed.rows() == words_for(cols, bits) && packed.cols() == rows,
          "unpack_qweight: packed shape [", packed.rows(), ", ", packed.cols(), "] does not hold ",
          rows, " x ", cols, " codes of ", bits, " bits");
  Matrix<std::uint8_t> codes(rows, cols);
  for (std::int64_t o = 0; o < rows; ++o)
    for (std::int64_t k = 0; k < cols; ++k)
      codes(o, k) = static_cast<std::uint8_t>(get(packed, o, k, bits));
  return codes;
}

Matrix<std::int32_t> pack_qzeros(const Matrix<std::int32_t>& zeros, int bits, int offset) {
  check_bits(bits);
  const std::int64_t out = zeros.rows(), groups = zeros.cols();
  // Transposed layout: [groups, words over out]; pack each group's row of zeros as a stream.
  Matrix<std::int32_t> packed_t(words_for(out, bits), groups, 0);
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
  require(packed.rows() == groups && packed.cols() == words_for(rows, bits),
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
