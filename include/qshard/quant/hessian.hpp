#pragma once
// Accumulation of a linear layer's input Hessian H = 2 X^T X / n, exact and order-independent.
//
// Calibration tokens are processed in fixed units (a unit is a fixed number of samples, never
// dependent on the rank count). Each unit's partial X_u^T X_u is computed in double and rounded to
// a fixed-point grid of 2^-kFractionBits, held as two int64 limbs (high and low 32 bits of a
// 96-bit integer). Integer sums are exact and associative, so summing units on one rank or
// all-reducing limb arrays over any number of ranks (MPI or NCCL int64 sum) gives bitwise the
// same H, whatever the order.
#include <cstdint>
#include <span>
#include <vector>

#include "qshard/core/matrix.hpp"

namespace qshard {

class HessianAccumulator {
 public:
  static constexpr int kFractionBits = 40;

  HessianAccumulator() = default;
  explicit HessianAccumulator(std::int64_t features);

  std::int64_t features() const { return features_; }
  std::int64_t tokens() const { return buffer_.empty() ? 0 : buffer_.back(); }

  // Adds X^T X of one unit, X = [tokens, features] row-major fp32 (computed in double).
  void add_unit(const MatrixF& x);
  // Adds an already computed unit partial (symmetric, double) for `tokens` tokens; the CUDA
  // backend feeds its GEMM results through here or through its own kernel of the same rounding.
  void add_partial(const MatrixD& partial, std::int64_t tokens);

  // The limbs and the token count as one int64 array for an all-reduce (sum) across ranks.
  std::span<std::int64_t> reduction_buffer() { return buffer_; }
  std::span<const std::int64_t> reduction_buffer() const { return buffer_; }

  // H = 2 X^T X / n over everything added (and reduced). Throws if no token was added or if the
  // sums are not finite.
  MatrixD hessian() const;
  // The raw sum X^T X (no scaling), for tests.
  MatrixD sum() const;

 private:
  std::int64_t features_ = 0;
  // [features^2 high limbs][features^2 low limbs][token count]
  std::vector<std::int64_t> buffer_;
};

// Splits a double into the two fixed-point limbs used above (exposed for the CUDA kernel tests).
void to_fixed_limbs(double value, std::int64_t& high, std::int64_t& low);
double from_fixed_limbs(std::int64_t high, std::int64_t low);

}  // namespace qshard
