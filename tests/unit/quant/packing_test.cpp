// Packing in the GPTQ checkpoint layout: round trips and hand-computed words.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "qshard/core/dtype.hpp"
#include "qshard/core/error.hpp"
#include "qshard/quant/packing.hpp"

namespace qshard {
namespace {

Matrix<std::uint8_t> random_codes(std::mt19937& rng, std::int64_t rows, std::int64_t cols,
                                  int bits) {
  Matrix<std::uint8_t> codes(rows, cols);
  for (auto& c : codes.values()) c = static_cast<std::uint8_t>(rng() % (1u << bits));
  return codes;
}

TEST(Packing, QweightRoundTripsForEveryWidthAndOddSizes) {
  std::mt19937 rng(std::random_device{}());
  for (const int bits : {2, 3, 4, 8})
    for (const auto& [rows, cols] : {std::pair{16, 64}, {37, 172}, {5, 33}, {1, 1}}) {
      const Matrix<std::uint8_t> codes = random_codes(rng, rows, cols, bits);
      const Matrix<std::int32_t> packed = pack_qweight(codes, bits);
      EXPECT_EQ(packed.rows(), (cols * bits + 31) / 32);
      EXPECT_EQ(packed.cols(), rows);
      EXPECT_EQ(unpack_qweight(packed, bits, rows, cols), codes)
          << bits << " bits " << rows << "x" << cols;
    }
}

// Bit by bit, independently of the packer: column o's codes as one little-endian bit stream.
TEST(Packing, QweightEqualsABitByBitReferenceAcrossColumnBlocks) {
  std::mt19937 rng(7);
  for (const int bits : {2, 3, 4, 8}) {
    const std::int64_t rows = 200, cols = 96;  // more output columns than one block of 64
    const Matrix<std::uint8_t> codes = random_codes(rng, rows, cols, bits);
    const Matrix<std::int32_t> packed = pack_qweight(codes, bits);
    const std::int64_t words = (cols * bits + 31) / 32;
    ASSERT_EQ(packed.rows(), words);
    for (std::int64_t o = 0; o < rows; ++o) {
      std::vector<int> stream(static_cast<std::size_t>(words * 32), 0);
      for (std::int64_t k = 0; k < cols; ++k)
        for (int b = 0; b < bits; ++b)
          stream[static_cast<std::size_t>(k * bits + b)] = (codes(o, k) >> b) & 1;
      for (std::int64_t w = 0; w < words; ++w) {
        std::uint32_t expected = 0;
        for (int j = 0; j < 32; ++j)
          expected |= static_cast<std::uint32_t>(stream[static_cast<std::size_t>(w * 32 + j)]) << j;
        ASSERT_EQ(static_cast<std::uint32_t>(packed(w, o)), expected)
            << bits << " bits, word " << w << " of column " << o;
      }
    }
  }
  Matrix<std::uint8_t> too_wide(130, 8, 1);
  too_wide(129, 3) = 16;  // does not fit 4 bits, in the third block
  EXPECT_THROW(pack_qweight(too_wide, 4), Error);
}

TEST(Packing, HandComputedWords) {
  // 4 bits: codes 1..8 of one output column fill one word little end first.
  Matrix<std::uint8_t> four(1, 8);
  for (int k = 0; k < 8; ++k) four(0, k) = static_cast<std::uint8_t>(k + 1);
  EXPECT_EQ(static_cast<std::uint32_t>(pack_qweight(four, 4)(0, 0)), 0x87654321u);
  // 2 bits: 1,2,3,0 repeated -> 0b00111001 per byte.
  Matrix<std::uint8_t> two(1, 16);
  for (int k = 0; k < 16; ++k) two(0, k) = static_cast<std::uint8_t>((k + 1) % 4);
  EXPECT_EQ(static_cast<std::uint32_t>(pack_qweight(two, 2)(0, 0)), 0x39393939u);
  // 3 bits: value 10 straddles words 0 and 1 (bits 30..32), value 21 words 1 and 2 (bits 63..65).
  Matrix<std::uint8_t> three(1, 32, 0);
  three(0, 0) = 1;
  three(0, 10) = 7;
  three(0, 21) = 5;  // 0b101: bit 63 = 1, bits 64..65 = 0b10
  const Matrix<std::int32_t> p = pack_qweight(three, 3);
  ASSERT_EQ(p.rows(), 3);
  EXPECT_EQ(static_cast<std::uint32_t>(p(0, 0)), 0xC0000001u);
  EXPECT_EQ(static_cast<std::uint32_t>(p(1, 0)), 0x80000001u);
  EXPECT_EQ(static_cast<std::uint32_t>(p(2, 0)), 0x00000002u);
  // 8 bits: bytes in order.
  Matrix<std::uint8_t> eight(1, 4);
  eight(0, 0) = 0x11;
  eight(0, 1) = 0x22;
  eight(0, 2) = 0x33;
  eight(0, 3) = 0xff;
  EXPECT_EQ(static_cast<std::uint32_t>(pack_qweight(eight, 8)(0, 0)), 0xff332211u);
}

TEST(Packing, ZerosRoundTripWithAndWithoutTheV1Offset) {
  std::mt19937 rng(std::random_device{}());
  for (const int bits : {2, 3, 4, 8}) {
    Matrix<std::int32_t> zeros(172, 6);
    for (auto& z : zeros.values()) z = static_cast<std::int32_t>(rng() % (1u << bits));
    zeros(0, 0) = 0;  // wraps to maxq with the v1 offset
    for (const int offset : {0, 1}) {
      const Matrix<std::int32_t> packed = pack_qzeros(zeros, bits, offset);
      EXPECT_EQ(packed.rows(), 6);
      EXPECT_EQ(packed.cols(), (172 * bits + 31) / 32);
      EXPECT_EQ(unpack_qzeros(packed, bits, 172, 6, offset), zeros)
          << bits << " bits, offset " << offset;
    }
    const Matrix<std::int32_t> v1 = pack_qzeros(zeros, bits, 1);
    EXPECT_EQ(static_cast<std::uint32_t>(v1(0, 0)) & ((1u << bits) - 1u), (1u << bits) - 1u);
  }
}

TEST(Packing, HandComputedZeroWords) {
  // 4 bits, v1 offset: zeros 1..8 of eight outputs are stored as 0..7 along the output dimension.
  Matrix<std::int32_t> zeros(9, 2);
  for (int o = 0; o < 9; ++o) {
    zeros(o, 0) = o + 1;
    zeros(o, 1) = 15 - o;
  }
  const Matrix<std::int32_t> packed = pack_qzeros(zeros, 4, 1);
  ASSERT_EQ(packed.rows(), 2);
  ASSERT_EQ(packed.cols(), 2);
  EXPECT_EQ(static_cast<std::uint32_t>(packed(0, 0)), 0x76543210u);
  EXPECT_EQ(static_cast<std::uint32_t>(packed(0, 1)), 0x00000008u);  // ninth output, zero padded
  EXPECT_EQ(static_cast<std::uint32_t>(packed(1, 0)), 0x789ABCDEu);
  EXPECT_EQ(static_cast<std::uint32_t>(packed(1, 1)), 0x00000006u);
  // 3 bits: the eleventh output (index 10) straddles words 0 and 1.
  Matrix<std::int32_t> three(11, 1, 0);
  three(10, 0) = 6;  // 0b110: bit 30 = 0, bit 31 = 1, bit 32 = 1
  const Matrix<std::int32_t> p3 = pack_qzeros(three, 3);
  ASSERT_EQ(p3.cols(), 2);
  EXPECT_EQ(static_cast<std::uint32_t>(p3(0, 0)), 0x80000000u);
  EXPECT_EQ(static_cast<std::uint32_t>(p3(0, 1)), 0x00000001u);
}

TEST(Packing, ScalesAreFp16Transposed) {
  MatrixF scales(3, 2);
  scales(0, 0) = 0.5f;
  scales(0, 1) = 1.0f / 3.0f;
  scales(1, 0) = 2.0f;
  scales(1, 1) = 1e-3f;
  scales(2, 0) = 7.25f;
  scales(2, 1) = 65504.0f;
  const Matrix<std::uint16_t> packed = pack_scales_f16(scales);
  EXPECT_EQ(packed.rows(), 2);
  EXPECT_EQ(packed(0, 1), 0x4000u);  // 2.0
  const MatrixF back = unpack_scales_f16(packed);
  for (std::int64_t r = 0; r < 3; ++r)
    for (std::int64_t g = 0; g < 2; ++g) EXPECT_EQ(back(r, g), round_to_f16(scales(r, g)));
}

}  // namespace
}  // namespace qshard
