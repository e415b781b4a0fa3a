#pragma once
// The result of quantizing one weight matrix: integer codes, per-group scales and zeros, g_idx.
#include <cstdint>
#include <vector>

#include "qshard/core/matrix.hpp"

namespace qshard {

struct QuantizedWeight {
  int bits = 4;
  std::int64_t group_size = -1;     // as configured; -1 means one group of all columns
  Matrix<std::uint8_t> codes;       // [rows, cols], values 0..2^bits-1, original column order
  MatrixF scales;                   // [rows, groups], fp16-representable values
  Matrix<std::int32_t> zeros;       // [rows, groups]
  std::vector<std::int32_t> g_idx;  // [cols]: the group of every input column

  std::int64_t rows() const { return codes.rows(); }
  std::int64_t cols() const { return codes.cols(); }
  std::int64_t groups() const { return scales.cols(); }

  // A weight of the given shape with zero codes, scales and zeros, and `g_idx` (empty: the
  // sequential groups of sequential_g_idx). Every producer (solvers, RTN, readers) starts here.
  static QuantizedWeight allocate(int bits, std::int64_t group_size, std::int64_t rows,
                                  std::int64_t cols, std::int64_t groups,
                                  std::vector<std::int32_t> g_idx = {});

  // W_hat[r, c] = scales[r, g] * (codes[r, c] - zeros[r, g]) with g = g_idx[c], computed in
  // double and rounded to fp32 (the same rule everywhere weights are dequantized).
  MatrixF dequantize() const;
  // Rows [begin, end) as a QuantizedWeight of their own; append() is its inverse.
  QuantizedWeight slice_rows(std::int64_t begin, std::int64_t end) const;
};

// Stacks `parts` along the rows (they must share bits, group size, columns and g_idx).
QuantizedWeight stack_rows(const std::vector<QuantizedWeight>& parts);

// Number of groups for `cols` columns: ceil(cols / group_size), or 1 when group_size is -1.
std::int64_t group_count(std::int64_t cols, std::int64_t group_size);
// Columns per group: group_size, or all `cols` when group_size is -1 (one group per row).
std::int64_t group_width(std::int64_t cols, std::int64_t group_size);
// g_idx of groups of consecutive columns (RTN, GPTQ without act_order): column c in group
// c / group_size, every column in group 0 when group_size is -1.
std::vector<std::int32_t> sequential_g_idx(std::int64_t cols, std::int64_t group_size);

}  // namespace qshard
