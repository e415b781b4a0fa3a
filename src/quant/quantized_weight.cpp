#include "qshard/quant/quantized_weight.hpp"

#include <algorithm>

#include "qshard/core/error.hpp"

namespace qshard {

std::int64_t group_count(std::int64_t cols, std::int64_t group_size) {
  return group_size <= 0 ? 1 : (cols + group_size - 1) / group_size;
}

std::int64_t group_width(std::int64_t cols, std::int64_t group_size) {
  return group_size > 0 ? group_size : cols;
}

std::vector<std::int32_t> sequential_g_idx(std::int64_t cols, std::int64_t group_size) {
  const std::int64_t size = std::max<std::int64_t>(group_width(cols, group_size), 1);
  std::vector<std::int32_t> g_idx(static_cast<std::size_t>(cols));
  for (std::int64_t c = 0; c < cols; ++c)
    g_idx[static_cast<std::size_t>(c)] = static_cast<std::int32_t>(c / size);
  return g_idx;
}

QuantizedWeight QuantizedWeight::allocate(int bits, std::int64_t group_size, std::int64_t rows,
                                          std::int64_t cols, std::int64_t groups,
                                          std::vector<std::int32_t> g_idx) {
  require(g_idx.empty() || static_cast<std::int64_t>(g_idx.size()) == cols, "g_idx of ",
          g_idx.size(), " entries for ", cols, " columns");
  QuantizedWeight w;
  w.bits = bits;
  w.group_size = group_size;
  w.codes = Matrix<std::uint8_t>(rows, cols);
  w.scales = MatrixF(rows, groups);
  w.zeros = Matrix<std::int32_t>(rows, groups);
  w.g_idx = g_idx.empty() ? sequential_g_idx(cols, group_size) : std::move(g_idx);
  return w;
}

MatrixF QuantizedWeight::dequantize() const {
  MatrixF out(rows(), cols());
  for (std::int64_t r = 0; r < rows(); ++r) {
    for (std::int64_t c = 0; c < cols(); ++c) {
      const std::int32_t g = g_idx[static_cast<std::size_t>(c)];
      out(r, c) = static_cast<float>(static_cast<double>(scales(r, g)) *
                                     static_cast<double>(codes(r, c) - zeros(r, g)));
    }
  }
  return out;
}

QuantizedWeight QuantizedWeight::slice_rows(std::int64_t begin, std::int64_t end) const {
  require(0 <= begin && begin <= end && end <= rows(), "slice_rows: [", begin, ", ", end,
          ") outside ", rows(), " rows");
  QuantizedWeight out = allocate(bits, group_size, end - begin, cols(), groups(), g_idx);
  std::copy(codes.data() + begin * cols(), codes.data() + end * cols(), out.codes.data());
  std::copy(scales.data() + begin * groups(), scales.data() + end * groups(), out.scales.data());
  std::copy(zeros.data() + begin * groups(), zeros.data() + end * groups(), out.zeros.data());
  return out;
}

QuantizedWeight stack_rows(const std::vector<QuantizedWeight>& parts) {
  require(!parts.empty(), "stack_rows: nothing to stack");
  const QuantizedWeight& first = parts.front();
  std::int64_t rows = 0;
  for (const QuantizedWeight& p : parts) {
    require(p.bits == first.bits && p.group_size == first.group_size && p.cols() == first.cols() &&
                p.groups() == first.groups() && p.g_idx == first.g_idx,
            "stack_rows: parts differ in bits, groups, columns or g_idx");
    rows += p.rows();
  }
  QuantizedWeight out = QuantizedWeight::allocate(first.bits, first.group_size, rows, first.cols(),
                                                  first.groups(), first.g_idx);
  std::int64_t r = 0;
  for (const QuantizedWeight& p : parts) {
    std::copy(p.codes.values().begin(), p.codes.values().end(),
              out.codes.data() + r * first.cols());
    std::copy(p.scales.values().begin(), p.scales.values().end(),
              out.scales.data() + r * first.groups());
    std::copy(p.zeros.values().begin(), p.zeros.values().end(),
              out.zeros.data() + r * first.groups());
    r += p.rows();
  }
  return out;
}

}  // namespace qshard
