#pragma once
// Tensors as checkpoints store them: a dtype, a shape and bytes (borrowed or owned).
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "qshard/core/dtype.hpp"
#include "qshard/core/matrix.hpp"

namespace qshard {

using Shape = std::vector<std::int64_t>;

std::int64_t element_count(const Shape& shape);
std::string shape_string(const Shape& shape);  // "[64, 172]"

// A non-owning view of a tensor's bytes (e.g. into a memory-mapped safetensors file).
struct TensorView {
  DType dtype = DType::F32;
  Shape shape;
  std::span<const std::byte> bytes;

  std::int64_t numel() const { return element_count(shape); }
  // All elements converted to fp32.
  std::vector<float> to_f32() const;
  // A 2-D tensor as an fp32 matrix; a 1-D tensor as a [1, n] matrix.
  MatrixF to_matrix() const;
};

// A tensor that owns its bytes.
class Tensor {
 public:
  Tensor() = default;
  Tensor(DType dtype, Shape shape);
  static Tensor from_f32(std::span<const float> values, Shape shape, DType dtype = DType::F32);
  static Tensor copy_of(const TensorView& view);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  std::int64_t numel() const { return element_count(shape_); }
  std::span<std::byte> bytes() { return bytes_; }
  std::span<const std::byte> bytes() const { return bytes_; }
  TensorView view() const { return {dtype_, shape_, bytes_}; }
  std::vector<float> to_f32() const { return view().to_f32(); }

  template <typename T>
  std::span<T> as() {
    return {reinterpret_cast<T*>(bytes_.data()), bytes_.size() / sizeof(T)};
  }
  template <typename T>
  std::span<const T> as() const {
    return {reinterpret_cast<const T*>(bytes_.data()), bytes_.size() / sizeof(T)};
  }

 private:
  DType dtype_ = DType::F32;
  Shape shape_;
  std::vector<std::byte> bytes_;
};

}  // namespace qshard
