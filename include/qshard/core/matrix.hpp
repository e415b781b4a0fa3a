#pragma once
// A dense row-major matrix that owns its elements: the working type of the CPU backend.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "qshard/core/error.hpp"

namespace qshard {

template <typename T>
class Matrix {
 public:
  Matrix() = default;
  Matrix(std::int64_t rows, std::int64_t cols, T fill = T{})
      : rows_(rows), cols_(cols), data_(checked_size(rows, cols), fill) {}
  Matrix(std::int64_t rows, std::int64_t cols, std::vector<T> data)
      : rows_(rows), cols_(cols), data_(std::move(data)) {
    require(data_.size() == checked_size(rows, cols), "Matrix: ", data_.size(),
            " elements given for shape [", rows, ", ", cols, "]");
  }

  std::int64_t rows() const { return rows_; }
  std::int64_t cols() const { return cols_; }
  std::size_t size() const { return data_.size(); }
  bool empty() const { return data_.empty(); }

  T* data() { return data_.data(); }
  const T* data() const { return data_.data(); }
  std::vector<T>& values() { return data_; }
  const std::vector<T>& values() const { return data_; }

  T& operator()(std::int64_t r, std::int64_t c) { return data_[index(r, c)]; }
  const T& operator()(std::int64_t r, std::int64_t c) const { return data_[index(r, c)]; }

  std::span<T> row(std::int64_t r) {
    return {data_.data() + r * cols_, static_cast<std::size_t>(cols_)};
  }
  std::span<const T> row(std::int64_t r) const {
    return {data_.data() + r * cols_, static_cast<std::size_t>(cols_)};
  }

  bool operator==(const Matrix&) const = default;

 private:
  static std::size_t checked_size(std::int64_t rows, std::int64_t cols) {
    require(rows >= 0 && cols >= 0, "Matrix: negative shape [", rows, ", ", cols, "]");
    return static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols);
  }
  std::size_t index(std::int64_t r, std::int64_t c) const {
    return static_cast<std::size_t>(r) * static_cast<std::size_t>(cols_) +
           static_cast<std::size_t>(c);
  }

  std::int64_t rows_ = 0;
  std::int64_t cols_ = 0;
  std::vector<T> data_;
};

using MatrixF = Matrix<float>;
using MatrixD = Matrix<double>;

}  // namespace qshard
