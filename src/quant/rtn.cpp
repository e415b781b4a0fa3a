// Round-to-nearest: the baseline every GPTQ result is compared with.
#include "qshard/quant/quantizer.hpp"
#include "qshard/quant/solver.hpp"

namespace qshard {

QuantizedWeight quantize_rtn(const MatrixF& weight, const QuantConfig& config) {
  config.validate();
  const std::int64_t rows = weight.rows(), cols = weight.cols();
  const std::int64_t size = group_width(cols, config.group_size);
  const std::int64_t groups = group_count(cols, config.group_size);
  QuantizedWeight q = QuantizedWeight::allocate(config.bits, config.group_size, rows, cols, groups);
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::span<const float> row = weight.row(r);
    for (std::int64_t g = 0; g < groups; ++g) {
      const std::int64_t begin = g * size, end = std::min(cols, begin + size);
      const GroupParams p = find_params(
          row.subspan(static_cast<std::size_t>(begin), static_cast<std::size_t>(end - begin)),
          config);
      q.scales(r, g) = p.scale;
      q.zeros(r, g) = p.zero;
      for (std::int64_t c = begin; c < end; ++c)
        q.codes(r, c) = static_cast<std::uint8_t>(
            quantize_value(row[static_cast<std::size_t>(c)], p, config.maxq()));
    }
  }
  return q;
}

}  // namespace qshard
