// Tensors: element counts, shapes, conversions to and from fp32.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "qshard/core/error.hpp"
#include "qshard/core/tensor.hpp"

namespace qshard {
namespace {

TEST(Tensor, ElementCount) {
  EXPECT_EQ(element_count({}), 1);  // a scalar
  EXPECT_EQ(element_count({7}), 7);
  EXPECT_EQ(element_count({2, 3, 4}), 24);
  EXPECT_EQ(element_count({5, 0}), 0);
  EXPECT_THROW(element_count({2, -1}), Error);
  EXPECT_EQ(shape_string({64, 172}), "[64, 172]");
  EXPECT_EQ(shape_string({}), "[]");
}

TEST(Tensor, FromF32RoundsPerDtype) {
  const std::vector<float> values{1.0f, -2.5f, 1.0f + 1.0f / 4096, 65504.0f, 1e-8f, 3.0e38f};
  const Tensor f32 = Tensor::from_f32(values, {2, 3});
  EXPECT_EQ(f32.bytes().size(), 24u);
  EXPECT_EQ(f32.to_f32(), values);

  const Tensor f16 = Tensor::from_f32(values, {2, 3}, DType::F16);
  EXPECT_EQ(f16.bytes().size(), 12u);
  const std::vector<float> back16 = f16.to_f32();
  for (std::size_t i = 0; i < values.size(); ++i) EXPECT_EQ(back16[i], round_to_f16(values[i]));
  EXPECT_EQ(back16[2], 1.0f);  // 1 + 2^-12 is a tie below fp16 precision: rounds to even
  EXPECT_EQ(f16.as<std::uint16_t>()[5], 0x7c00);  // overflow to Inf

  const Tensor bf16 = Tensor::from_f32(values, {6}, DType::BF16);
  const std::vector<float> back_bf = bf16.to_f32();
  for (std::size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(back_bf[i], bf16_to_f32(f32_to_bf16(values[i])));
  }
  EXPECT_THROW(Tensor::from_f32(values, {4}), Error);
}

TEST(Tensor, ToF32FromOtherDtypes) {
  Tensor f64(DType::F64, {3});
  const double doubles[] = {0.5, -1.25, 1e300};
  std::memcpy(f64.bytes().data(), doubles, sizeof doubles);
  const std::vector<float> from64 = f64.to_f32();
  EXPECT_EQ(from64[0], 0.5f);
  EXPECT_EQ(from64[1], -1.25f);
  EXPECT_TRUE(std::isinf(from64[2]));

  Tensor i32(DType::I32, {2});
  i32.as<std::int32_t>()[0] = -7;
  i32.as<std::int32_t>()[1] = 1 << 20;
  EXPECT_EQ(i32.to_f32(), (std::vector<float>{-7.0f, 1048576.0f}));

  const Tensor u8(DType::U8, {2});
  EXPECT_THROW(u8.to_f32(), Error);
}

TEST(Tensor, ViewsMatricesAndCopies) {
  const std::vector<float> values{1, 2, 3, 4, 5, 6};
  const Tensor t = Tensor::from_f32(values, {2, 3}, DType::BF16);
  const MatrixF m = t.view().to_matrix();
  EXPECT_EQ(m.rows(), 2);
  EXPECT_EQ(m.cols(), 3);
  EXPECT_EQ(m(1, 2), 6.0f);
  const MatrixF row = Tensor::from_f32(values, {6}).view().to_matrix();
  EXPECT_EQ(row.rows(), 1);
  EXPECT_EQ(row.cols(), 6);
  EXPECT_THROW(Tensor::from_f32(values, {1, 2, 3}).view().to_matrix(), Error);

  const Tensor copy = Tensor::copy_of(t.view());
  EXPECT_EQ(copy.dtype(), DType::BF16);
  EXPECT_EQ(copy.shape(), t.shape());
  EXPECT_EQ(copy.to_f32(), t.to_f32());
  EXPECT_NE(copy.bytes().data(), t.bytes().data());

  TensorView short_view = t.view();
  short_view.bytes = short_view.bytes.first(4);
  EXPECT_THROW(short_view.to_f32(), Error);
}

}  // namespace
}  // namespace qshard
