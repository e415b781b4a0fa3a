#include "qshard/quant/quantizer.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "qshard/core/dtype.hpp"
#include "qshard/core/error.hpp"

namespace qshard {
namespace {

// Smallest positive fp16 value: a scale that underflows in fp16 is clamped to it.
constexpr float kMinScale = 5.9604645e-08f;

GroupParams params_for_range(double xmin, double xmax, const QuantConfig& c) {
  const std::int32_t maxq = c.maxq();
  GroupParams p;
  float scale = round_to_f16(static_cast<float>((xmax - xmin) / maxq));
  require(std::isfinite(scale), "quantization scale ", (xmax - xmin) / maxq,
          " overflows fp16 (weights beyond +-65504 * maxq)");
  p.scale = std::max(scale, kMinScale);
  p.zero = c.sym ? (maxq + 1) / 2
                 : static_cast<std::int32_t>(std::nearbyint(-xmin / static_cast<double>(p.scale)));
  return p;
}

template <typename T>
GroupParams find_params_impl(std::span<const T> x, const QuantConfig& c) {
  double xmin = 0.0, xmax = 0.0;
  for (const T v : x) {
    require(std::isfinite(static_cast<double>(v)), "non-finite weight ", static_cast<double>(v),
            " in a quantization group");
    xmin = std::min(xmin, static_cast<double>(v));
    xmax = std::max(xmax, static_cast<double>(v));
  }
  if (c.sym) {
    xmax = std::max(std::abs(xmin), xmax);
    if (xmin < 0) xmin = -xmax;
  }
  if (xmin == 0.0 && xmax == 0.0) {
    xmin = -1.0;
    xmax = 1.0;
  }
  GroupParams best = params_for_range(xmin, xmax, c);
  if (!c.mse) return best;

  const std::int32_t maxq = c.maxq();
  double best_error = std::numeric_limits<double>::infinity();
  const int steps = static_cast<int>(c.mse_maxshrink * c.mse_grid);
  for (int i = 0; i < steps; ++i) {
    const double shrink = 1.0 - static_cast<double>(i) / c.mse_grid;
    const GroupParams p = params_for_range(shrink * xmin, shrink * xmax, c);
    double error = 0.0;
    for (const T v : x) {
      const double q = dequantize_value(quantize_value(static_cast<double>(v), p, maxq), p);
      error += std::pow(std::abs(q - static_cast<double>(v)), c.mse_norm);
    }
    if (error < best_error) {
      best_error = error;
      best = p;
    }
  }
  return best;
}

}  // namespace

GroupParams find_params(std::span<const float> values, const QuantConfig& config) {
  return find_params_impl(values, config);
}
GroupParams find_params(std::span<const double> values, const QuantConfig& config) {
  return find_params_impl(values, config);
}

}  // namespace qshard
