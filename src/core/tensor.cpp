#include "qshard/core/tensor.hpp"

#include <cstring>
#include <sstream>

#include "qshard/core/error.hpp"

namespace qshard {

std::int64_t element_count(const Shape& shape) {
  std::int64_t n = 1;
  for (const std::int64_t d : shape) {
    require(d >= 0, "negative dimension in shape ", shape_string(shape));
    n *= d;
  }
  return n;
}

std::string shape_string(const Shape& shape) {
  std::ostringstream out;
  out << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

std::vector<float> TensorView::to_f32() const {
  const auto n = static_cast<std::size_t>(numel());
  require(bytes.size() == n * dtype_size(dtype), "tensor of shape ", shape_string(shape),
          " and dtype ", dtype_name(dtype), " has ", bytes.size(), " bytes");
  std::vector<float> out(n);
  convert_to_f32(bytes.data(), dtype, n, out.data());
  return out;
}

MatrixF TensorView::to_matrix() const {
  require(shape.size() == 1 || shape.size() == 2, "expected a 1-D or 2-D tensor, got shape ",
          shape_string(shape));
  const std::int64_t rows = shape.size() == 2 ? shape[0] : 1;
  const std::int64_t cols = shape.back();
  return MatrixF(rows, cols, to_f32());
}

Tensor::Tensor(DType dtype, Shape shape)
    : dtype_(dtype),
      shape_(std::move(shape)),
      bytes_(static_cast<std::size_t>(element_count(shape_)) * dtype_size(dtype)) {}

Tensor Tensor::from_f32(std::span<const float> values, Shape shape, DType dtype) {
  Tensor t(dtype, std::move(shape));
  require(static_cast<std::int64_t>(values.size()) == t.numel(),
          "Tensor::from_f32: ", values.size(), " values for shape ", shape_string(t.shape()));
  convert_from_f32(values.data(), values.size(), dtype, t.bytes_.data());
  return t;
}

Tensor Tensor::copy_of(const TensorView& view) {
  Tensor t(view.dtype, view.shape);
  require(view.bytes.size() == t.bytes_.size(), "Tensor::copy_of: byte count mismatch");
  std::memcpy(t.bytes_.data(), view.bytes.data(), view.bytes.size());
  return t;
}

}  // namespace qshard
