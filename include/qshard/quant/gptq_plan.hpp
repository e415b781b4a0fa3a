#pragma once
// The backend-independent parts of GPTQ that every solver shares: preparing the Hessian (dead
// inputs, act_order permutation, stepped damping around a backend's factorisation) and planning
// the groups (which group each solved column belongs to, g_idx, precomputed group parameters).
#include <cstdint>
#include <functional>
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

// Validates H, marks dead inputs, permutes (act_order), and raises damping x10 until `factor`
// succeeds with every relative pivot >= kMinRelativePivot (at most options.max_damp_steps times);
// throws a clear error otherwise.
HessianFactor factorize_hessian(const MatrixD& hessian, const GptqOptions& options,
                                const InverseUpperCholesky& factor);

struct GroupPlan {
  std::int64_t group_size = 0;  // effective: the columns for group_size -1
  std::int64_t groups = 0;
  bool precomputed = false;                     // static groups or one group per row
  std::vector<std::int32_t> group_of_position;  // group of the k-th solved column
  std::vector<std::int32_t> g_idx;              // group of every original column
};
GroupPlan plan_groups(const HessianFactor& factor, const GptqOptions& options);

// W in solve order with dead columns zeroed, as double; throws on non-finite weights.
MatrixD permuted_weights(const MatrixF& weight, const HessianFactor& factor);

// Scales and zeros of every group from the original (dead-zeroed) weights, [rows, groups]; used
// when plan.precomputed.
void precompute_group_params(const MatrixF& weight, const HessianFactor& factor,
                             const GroupPlan& plan, const QuantConfig& config, MatrixF& scales,
                             Matrix<std::int32_t>& zeros);

}  // namespace qshard
