#pragma once
// Min/max (optionally MSE-clipped) scale and zero of a group of weights, and per-value codes.
#include <cstdint>
#include <span>

#include "qshard/core/matrix.hpp"
#include "qshard/quant/quant_config.hpp"

namespace qshard {

// Scale and zero point of one group of one row. The scale is rounded to fp16 when computed (it is
// stored as fp16), so quantizing with it and dequantizing the stored values give the same weights.
struct GroupParams {
  float scale = 1.0f;
  std::int32_t zero = 0;
};

// Asymmetric: scale = (max - min) / maxq over [min(x,0), max(x,0)], zero = round(-min/scale).
// Symmetric: the range is [-amax, amax] and zero = (maxq + 1) / 2. A zero range gives scale 1
// (asymmetric: range [-1, 1]) as the reference tools do. With config.mse the range is shrunk by
// the grid search that minimises sum |q(x) - x|^norm.
GroupParams find_params(std::span<const float> values, const QuantConfig& config);
GroupParams find_params(std::span<const double> values, const QuantConfig& config);

inline std::int32_t quantize_value(double x, const GroupParams& p, std::int32_t maxq);
inline double dequantize_value(std::int32_t q, const GroupParams& p) {
  return static_cast<double>(p.scale) * static_cast<double>(q - p.zero);
}

}  // namespace qshard

#include <algorithm>
#include <cmath>

namespace qshard {
// clamp(round(x / scale) + zero, 0, maxq) with round-half-to-even, as torch.round.
inline std::int32_t quantize_value(double x, const GroupParams& p, std::int32_t maxq) {
  const double q = std::nearbyint(x / static_cast<double>(p.scale)) + p.zero;
  return static_cast<std::int32_t>(std::clamp(q, 0.0, static_cast<double>(maxq)));
}
}  // namespace qshard
