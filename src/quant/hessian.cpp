#include "qshard/quant/hessian.hpp"

#include <cblas.h>

#include <cmath>

#include "qshard/core/error.hpp"

namespace qshard {
namespace {

constexpr double kLowBase = 4294967296.0;  // 2^32
const double kScale = std::ldexp(1.0, HessianAccumulator::kFractionBits);
const double kHighScale = std::ldexp(1.0, HessianAccumulator::kFractionBits - 32);

}  // namespace

// value * 2^F = high * 2^32 + low with 0 <= low < 2^32, every step exact in double: the scaling by
// powers of two is exact, floor() is exact, and the difference keeps only bits of the original
// significand. Only the final llround rounds (to the 2^-F grid).
void to_fixed_limbs(double value, std::int64_t& high, std::int64_t& low) {
  const double high_part = std::floor(value * kHighScale);
  const double rest = value * kScale - high_part * kLowBase;  // in [0, 2^32)
  auto h = static_cast<std::int64_t>(high_part);
  auto l = std::llround(rest);
  if (l == static_cast<std::int64_t>(kLowBase)) {
    ++h;
    l = 0;
  }
  high = h;
  low = l;
}

double from_fixed_limbs(std::int64_t high, std::int64_t low) {
  // Normalise so the low limb carries only 32 bits, then combine with one rounding.
  const std::int64_t carry = low >> 32;  // arithmetic shift: floor division by 2^32
  const std::int64_t h = high + carry;
  const std::int64_t l = low - carry * static_cast<std::int64_t>(kLowBase);
  return (static_cast<double>(h) * kLowBase + static_cast<double>(l)) / kScale;
}

HessianAccumulator::HessianAccumulator(std::int64_t features)
    : features_(features), buffer_(static_cast<std::size_t>(2 * features * features + 1), 0) {
  require(features > 0, "HessianAccumulator: features must be positive (got ", features, ")");
}

void HessianAccumulator::add_unit(const MatrixF& x) {
  require(x.cols() == features_, "HessianAccumulator: unit has ", x.cols(), " features, expected ",
          features_);
  MatrixD xd(x.rows(), x.cols());
  for (std::size_t i = 0; i < x.size(); ++i) xd.data()[i] = x.data()[i];
  MatrixD partial(features_, features_);
  if (x.rows() > 0) {
    // Lower triangle of X^T X in double; mirrored below.
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, static_cast<int>(features_),
                static_cast<int>(x.rows()), 1.0, xd.data(), static_cast<int>(features_), 0.0,
                partial.data(), static_cast<int>(features_));
  }
  for (std::int64_t i = 0; i < features_; ++i)
    for (std::int64_t j = i + 1; j < features_; ++j) partial(i, j) = partial(j, i);
  add_partial(partial, x.rows());
}

void HessianAccumulator::add_partial(const MatrixD& partial, std::int64_t tokens) {
  require(partial.rows() == features_ && partial.cols() == features_,
          "HessianAccumulator: partial of shape [", partial.rows(), ", ", partial.cols(),
          "], expected ", features_);
  const std::size_t n = partial.size();
  std::int64_t* high = buffer_.data();
  std::int64_t* low = buffer_.data() + n;
  for (std::size_t i = 0; i < n; ++i) {
    const double v = partial.data()[i];
    require(std::isfinite(v), "Hessian accumulation: non-finite value ", v, " at (", i / features_,
            ", ", i % features_, ") of a calibration unit's X^T X");
    std::int64_t h = 0, l = 0;
    to_fixed_limbs(v, h, l);
    high[i] += h;
    low[i] += l;
  }
  buffer_.back() += tokens;
}

MatrixD HessianAccumulator::sum() const {
  const std::size_t n = static_cast<std::size_t>(features_ * features_);
  MatrixD out(features_, features_);
  for (std::size_t i = 0; i < n; ++i) out.data()[i] = from_fixed_limbs(buffer_[i], buffer_[n + i]);
  return out;
}

MatrixD HessianAccumulator::hessian() const {
  const std::int64_t n = buffer_.empty() ? 0 : buffer_.back();
  require(n > 0, "Hessian requested before any calibration token was added");
  MatrixD h = sum();
  const double factor = 2.0 / static_cast<double>(n);
  for (double& v : h.values()) v *= factor;
  return h;
}

}  // namespace qshard
