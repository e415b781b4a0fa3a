// The QuantizedWeight serializer (the tile exchange's message): round trips, several weights in
// one message, a permuted g_idx, and truncated or inconsistent messages refused.
#include "qshard/quant/quantized_weight_bytes.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>

#include "qshard/core/error.hpp"
#include "qshard/quant/solver.hpp"

namespace qshard {
namespace {

bool same(const QuantizedWeight& a, const QuantizedWeight& b) {
  return a.bits == b.bits && a.group_size == b.group_size && a.codes == b.codes &&
         a.scales == b.scales && a.zeros == b.zeros && a.g_idx == b.g_idx;
}

QuantizedWeight sample(std::int64_t rows, std::int64_t cols, int bits, std::int64_t group) {
  MatrixF w(rows, cols);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c)
      w(r, c) = static_cast<float>(std::sin(0.37 * static_cast<double>(r * cols + c)));
  QuantConfig config;
  config.bits = bits;
  config.group_size = group;
  return quantize_rtn(w, config);
}

TEST(QuantizedWeightBytes, RoundTripsSeveralWeightsInOneMessage) {
  const QuantizedWeight q = sample(37, 50, 3, 16);
  std::vector<std::byte> bytes;
  write_quantized(q, bytes);
  write_quantized(q.slice_rows(3, 9), bytes);
  write_quantized(sample(4, 10, 8, -1), bytes);
  std::size_t offset = 0;
  EXPECT_TRUE(same(read_quantized(bytes, offset), q));
  EXPECT_TRUE(same(read_quantized(bytes, offset), q.slice_rows(3, 9)));
  EXPECT_TRUE(same(read_quantized(bytes, offset), sample(4, 10, 8, -1)));
  EXPECT_EQ(offset, bytes.size());
}

TEST(QuantizedWeightBytes, KeepsAPermutedGroupIndex) {
  QuantizedWeight q = sample(5, 32, 4, 8);
  std::iota(q.g_idx.rbegin(), q.g_idx.rend(), 0);  // any order act_order may give
  for (auto& g : q.g_idx) g /= 8;
  std::vector<std::byte> bytes;
  write_quantized(q, bytes);
  std::size_t offset = 0;
  EXPECT_TRUE(same(read_quantized(bytes, offset), q));
}

TEST(QuantizedWeightBytes, RefusesTruncatedAndInconsistentMessages) {
  std::vector<std::byte> bytes;
  write_quantized(sample(37, 50, 3, 16), bytes);
  std::size_t offset = 0;
  EXPECT_THROW(read_quantized(std::span(bytes).first(20), offset), Error);
  offset = 0;
  EXPECT_THROW(read_quantized(std::span(bytes).first(bytes.size() - 1), offset), Error);
  std::vector<std::byte> huge = bytes;
  const std::int64_t rows = std::int64_t{1} << 40;  // more rows than the message holds
  std::memcpy(huge.data() + 4 + 8, &rows, sizeof rows);
  offset = 0;
  EXPECT_THROW(read_quantized(huge, offset), Error);
}

}  // namespace
}  // namespace qshard
