#pragma once
// The backend-independent parts of GPTQ that every solver shares: preparing the Hessian (dead
// inputs, act_order permutation, stepped damping around a backend's factorisation) and planning
// the groups (which group each solved column belongs to, g_idx, precomputed group parameters).
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "qshard/quant/solver.hpp"

namespace qshard {

// Computes U with A^-1 = U^T U for a symmetric A (row-major); false when A is not positive
// definite. Each backend supplies its own.
using InverseUpperCholesky = std::function<bool(const MatrixD& a, MatrixD& u)>;

// A factorisation also counts as failed when some column's relative pivot 1 / (U_kk^2 A_kk) (the
// share of the damped A_kk not explained by the later columns, in (0, 1]) is below this: H is then
// numerically singular (duplicated or too few inputs without damping) and U mostly rounding noise.
// Every backend applies the same bound.
inline constexpr double kMinRelativePivot = 1e-10;

// One factorisation attempt of a backend at absolute damping `lambda`: factorise
// A = P^T H P + lambda I (P the permutation in `factor.perm`, dead diagonals taken as 1) into U
// with A^-1 = U^T U, keeping U where the backend computes. False when A is not positive definite or
// a relative pivot is below kMinRelativePivot.
using FactorAttempt = std::function<bool(double lambda)>;

// The preparation every backend shares, from H's diagonal (checked finite by the caller): marks
// dead inputs (H[c, c] == 0), sets the act_order permutation, and calls `attempt` with damping
// damp_percent * mean diagonal, raised x10 until it succeeds (at most options.max_damp_steps
// times); records the damping used in `factor`, or throws the one clear error.
void prepare_and_factorize(std::span<const double> diagonal, const GptqOptions& options,
                           Factorization& factor, const FactorAttempt& attempt);

// The host version around `factor`: validates H (square, finite) and returns U in host memory.
HessianFactor factorize_hessian(const MatrixD& hessian, const GptqOptions& options,
                                const InverseUpperCholesky& factor);

struct GroupPlan {
  std::int64_t group_size = 0;  // effective: the columns for group_size -1
  std::int64_t groups = 0;
  bool precomputed = false;                     // static groups or one group per row
  std::vector<std::int32_t> group_of_position;  // group of the k-th solved column
  std::vector<std::int32_t> g_idx;              // group of every original column
};
GroupPlan plan_groups(const Factorization& factor, const GptqOptions& options);

// W in solve order with dead columns zeroed, as double; throws on non-finite weights.
MatrixD permuted_weights(const MatrixF& weight, const Factorization& factor);

// Scales and zeros of every group from the original (dead-zeroed) weights, [rows, groups]; used
// when plan.precomputed.
void precompute_group_params(const MatrixF& weight, const Factorization& factor,
                             const GroupPlan& plan, const QuantConfig& config, MatrixF& scales,
                             Matrix<std::int32_t>& zeros);

}  // namespace qshard
