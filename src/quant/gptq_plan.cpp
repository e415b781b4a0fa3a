#include "qshard/quant/gptq_plan.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "qshard/core/error.hpp"
#include "qshard/quant/quantized_weight.hpp"
#include "qshard/quant/quantizer.hpp"

namespace qshard {
namespace {

bool pivots_are_regular(const MatrixD& damped, const MatrixD& u) {
  for (std::int64_t k = 0; k < damped.rows(); ++k)
    if (!(1.0 / (u(k, k) * u(k, k) * damped(k, k)) >= kMinRelativePivot)) return false;
  return true;
}

}  // namespace

void prepare_and_factorize(std::span<const double> diagonal, const GptqOptions& options,
                           Factorization& f, const FactorAttempt& attempt) {
  options.validate();
  const auto n = static_cast<std::int64_t>(diagonal.size());
  require(n > 0, "Hessian of no features");
  f.columns = n;
  f.dead.assign(static_cast<std::size_t>(n), 0);
  std::vector<double> diag(diagonal.begin(), diagonal.end());
  for (std::size_t i = 0; i < diag.size(); ++i) {
    if (diag[i] == 0.0) {
      f.dead[i] = 1;
      diag[i] = 1.0;
    }
  }
  f.perm.resize(static_cast<std::size_t>(n));
  std::iota(f.perm.begin(), f.perm.end(), 0);
  if (options.act_order) {
    std::stable_sort(f.perm.begin(), f.perm.end(), [&](std::int32_t a, std::int32_t b) {
      return diag[static_cast<std::size_t>(a)] > diag[static_cast<std::size_t>(b)];
    });
  }
  const double mean_diag = std::accumulate(diag.begin(), diag.end(), 0.0) / static_cast<double>(n);
  double damp = options.damp_percent;
  for (int step = 0; step <= options.max_damp_steps; ++step) {
    if (attempt(damp * mean_diag)) {
      f.damp_percent_used = damp;
      f.damp_steps = step;
      return;
    }
    if (step < options.max_damp_steps) damp = damp > 0.0 ? damp * 10.0 : 0.01;
  }
  throw Error(str("Hessian of ", n, " features is not positive definite even with damp_percent ",
                  damp, " after ", options.max_damp_steps,
                  " increases (too few calibration tokens, or degenerate inputs)"));
}

HessianFactor factorize_hessian(const MatrixD& hessian, const GptqOptions& options,
                                const InverseUpperCholesky& factor) {
  const std::int64_t n = hessian.rows();
  require(n > 0 && hessian.cols() == n, "Hessian must be square (got [", hessian.rows(), ", ",
          hessian.cols(), "])");
  std::vector<double> diagonal(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = 0; j < n; ++j)
      require(std::isfinite(hessian(i, j)), "Hessian has a non-finite value ", hessian(i, j),
              " at (", i, ", ", j, ")");
    diagonal[static_cast<std::size_t>(i)] = hessian(i, i);
  }
  HessianFactor f;
  prepare_and_factorize(diagonal, options, f, [&](double lambda) {
    MatrixD damped(n, n);
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int32_t a = f.perm[static_cast<std::size_t>(i)];
      for (std::int64_t j = 0; j < n; ++j) {
        const std::int32_t b = f.perm[static_cast<std::size_t>(j)];
        damped(i, j) = a == b ? (f.dead[static_cast<std::size_t>(a)] ? 1.0 : hessian(a, a)) + lambda
                              : hessian(a, b);
      }
    }
    return factor(damped, f.hinv_upper) && pivots_are_regular(damped, f.hinv_upper);
  });
  return f;
}

GroupPlan plan_groups(const Factorization& f, const GptqOptions& options) {
  const std::int64_t n = f.columns;
  GroupPlan plan;
  plan.group_size = group_width(n, options.quant.group_size);
  plan.groups = group_count(n, options.quant.group_size);
  plan.precomputed = options.static_groups || options.quant.group_size <= 0;
  plan.group_of_position.resize(static_cast<std::size_t>(n));
  plan.g_idx.resize(static_cast<std::size_t>(n));
  for (std::int64_t k = 0; k < n; ++k) {
    const std::int64_t column = f.perm[static_cast<std::size_t>(k)];
    const auto g =
        static_cast<std::int32_t>((options.static_groups ? column : k) / plan.group_size);
    plan.group_of_position[static_cast<std::size_t>(k)] = g;
    plan.g_idx[static_cast<std::size_t>(column)] = g;
  }
  return plan;
}

MatrixD permuted_weights(const MatrixF& weight, const Factorization& f) {
  const std::int64_t rows = weight.rows(), n = weight.cols();
  require(n == f.columns, "solve: weight has ", n, " columns, the factorisation ", f.columns);
  MatrixD w(rows, n);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t k = 0; k < n; ++k) {
      const std::int32_t c = f.perm[static_cast<std::size_t>(k)];
      const float v = weight(r, c);
      require(std::isfinite(v), "weight has a non-finite value ", v, " at (", r, ", ", c, ")");
      w(r, k) = f.dead[static_cast<std::size_t>(c)] ? 0.0 : static_cast<double>(v);
    }
  return w;
}

void precompute_group_params(const MatrixF& weight, const Factorization& f, const GroupPlan& plan,
                             const QuantConfig& config, MatrixF& scales,
                             Matrix<std::int32_t>& zeros) {
  const std::int64_t rows = weight.rows(), n = weight.cols();
  std::vector<double> values;
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t g = 0; g < plan.groups; ++g) {
      values.clear();
      for (std::int64_t c = g * plan.group_size; c < std::min(n, (g + 1) * plan.group_size); ++c)
        values.push_back(f.dead[static_cast<std::size_t>(c)] ? 0.0
                                                             : static_cast<double>(weight(r, c)));
      const GroupParams p = find_params(std::span<const double>(values), config);
      scales(r, g) = p.scale;
      zeros(r, g) = p.zero;
    }
}

}  // namespace qshard
