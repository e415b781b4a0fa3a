#pragma once
// A column-by-column, unblocked, double-precision GPTQ written as plainly as possible, for tests
// only: its own Cholesky and inverse in plain loops (the reference route: chol(H), H^-1, then the
// upper Cholesky factor of H^-1), every column's error applied to all later columns at once.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "qshard/quant/quantized_weight.hpp"
#include "qshard/quant/quantizer.hpp"
#include "qshard/quant/solver.hpp"

namespace qshard::reference {

using Dense = std::vector<std::vector<double>>;

// Lower Cholesky factor; false if not positive definite.
inline bool cholesky(const Dense& a, Dense& l) {
  const std::size_t n = a.size();
  l.assign(n, std::vector<double>(n, 0.0));
  for (std::size_t j = 0; j < n; ++j) {
    double s = a[j][j];
    for (std::size_t k = 0; k < j; ++k) s -= l[j][k] * l[j][k];
    if (!(s > 0.0)) return false;
    l[j][j] = std::sqrt(s);
    for (std::size_t i = j + 1; i < n; ++i) {
      double t = a[i][j];
      for (std::size_t k = 0; k < j; ++k) t -= l[i][k] * l[j][k];
      l[i][j] = t / l[j][j];
    }
  }
  return true;
}

// H^-1 from its Cholesky factor: solve L L^T X = I column by column.
inline Dense inverse_from_cholesky(const Dense& l) {
  const std::size_t n = l.size();
  Dense inv(n, std::vector<double>(n, 0.0));
  for (std::size_t c = 0; c < n; ++c) {
    std::vector<double> y(n, 0.0), x(n, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
      double s = (i == c) ? 1.0 : 0.0;
      for (std::size_t k = 0; k < i; ++k) s -= l[i][k] * y[k];
      y[i] = s / l[i][i];
    }
    for (std::size_t i = n; i-- > 0;) {
      double s = y[i];
      for (std::size_t k = i + 1; k < n; ++k) s -= l[k][i] * x[k];
      x[i] = s / l[i][i];
    }
    for (std::size_t i = 0; i < n; ++i) inv[i][c] = x[i];
  }
  return inv;
}

struct Result {
  QuantizedWeight weight;
  double damp_used = 0.0;
};

// The same algorithm as the blocked solver, defined column by column. `block_size` only matters
// for the Reference group rule, which emulates the blocked code's stale group parameters.
inline Result gptq(const MatrixF& weight, const MatrixD& hessian, const GptqOptions& o) {
  const QuantConfig& qc = o.quant;
  const std::size_t rows = static_cast<std::size_t>(weight.rows()),
                    n = static_cast<std::size_t>(weight.cols());
  const std::int64_t gs = qc.group_size > 0 ? qc.group_size : static_cast<std::int64_t>(n);
  Dense h(n, std::vector<double>(n));
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j)
      h[i][j] = hessian(static_cast<std::int64_t>(i), static_cast<std::int64_t>(j));
  std::vector<bool> dead(n);
  for (std::size_t i = 0; i < n; ++i)
    if (h[i][i] == 0.0) {
      dead[i] = true;
      h[i][i] = 1.0;
    }
  std::vector<std::size_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  if (o.act_order)
    std::stable_sort(perm.begin(), perm.end(),
                     [&](std::size_t a, std::size_t b) { return h[a][a] > h[b][b]; });
  Dense hp(n, std::vector<double>(n));
  double mean = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < n; ++j) hp[i][j] = h[perm[i]][perm[j]];
    mean += hp[i][i] / static_cast<double>(n);
  }
  Result result;
  Dense u;
  double damp = o.damp_percent;
  for (int step = 0;; ++step) {
    Dense damped = hp, l, l2;
    for (std::size_t i = 0; i < n; ++i) damped[i][i] += damp * mean;
    if (cholesky(damped, l)) {
      const Dense inv = inverse_from_cholesky(l);
      if (cholesky(inv, l2)) {  // U = L2^T
        u.assign(n, std::vector<double>(n, 0.0));
        for (std::size_t i = 0; i < n; ++i)
          for (std::size_t j = i; j < n; ++j) u[i][j] = l2[j][i];
        // Numerically singular: some column is (almost) a combination of the later ones, its
        // conditional variance 1 / U_kk^2 below 1e-10 of its diagonal (the solver's bound).
        bool regular = true;
        for (std::size_t k = 0; k < n; ++k)
          regular = regular && 1.0 / (u[k][k] * u[k][k] * damped[k][k]) >= 1e-10;
        if (regular) break;
      }
    }
    if (step == o.max_damp_steps) throw Error("reference: not positive definite");
    damp = damp > 0.0 ? damp * 10.0 : 0.01;
  }
  result.damp_used = damp;

  Dense w(rows, std::vector<double>(n));
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t k = 0; k < n; ++k)
      w[r][k] = dead[perm[k]] ? 0.0
                              : static_cast<double>(weight(static_cast<std::int64_t>(r),
                                                           static_cast<std::int64_t>(perm[k])));

  QuantizedWeight& q = result.weight;
  const std::int64_t groups = group_count(static_cast<std::int64_t>(n), qc.group_size);
  q.bits = qc.bits;
  q.group_size = qc.group_size;
  q.codes = Matrix<std::uint8_t>(weight.rows(), weight.cols());
  q.scales = MatrixF(weight.rows(), groups);
  q.zeros = Matrix<std::int32_t>(weight.rows(), groups);
  q.g_idx.assign(n, 0);
  const bool precomputed = o.static_groups || qc.group_size <= 0;
  if (precomputed) {  // from the original (dead-zeroed) weights, in original column order
    for (std::size_t r = 0; r < rows; ++r)
      for (std::int64_t g = 0; g < groups; ++g) {
        std::vector<double> values;
        for (std::int64_t c = g * gs;
             c < std::min<std::int64_t>(static_cast<std::int64_t>(n), (g + 1) * gs); ++c)
          values.push_back(
              dead[static_cast<std::size_t>(c)] ? 0.0 : weight(static_cast<std::int64_t>(r), c));
        const GroupParams p = find_params(std::span<const double>(values), qc);
        q.scales(static_cast<std::int64_t>(r), g) = p.scale;
        q.zeros(static_cast<std::int64_t>(r), g) = p.zero;
      }
  }
  std::vector<std::vector<double>> errors(rows);  // errors of the current batch (Reference rule)
  for (std::size_t k = 0; k < n; ++k) {
    const std::int64_t g = o.static_groups ? static_cast<std::int64_t>(perm[k]) / gs
                                           : static_cast<std::int64_t>(k) / gs;
    q.g_idx[perm[k]] = static_cast<std::int32_t>(g);
    const std::size_t batch_start = k - k % static_cast<std::size_t>(o.block_size);
    if (k == batch_start)
      for (auto& e : errors) e.clear();
    for (std::size_t r = 0; r < rows; ++r) {
      const auto ri = static_cast<std::int64_t>(r);
      if (!precomputed && k % static_cast<std::size_t>(gs) == 0) {
        std::vector<double> values;
        for (std::size_t j = k; j < std::min(n, k + static_cast<std::size_t>(gs)); ++j) {
          double v = w[r][j];
          if (o.group_rule == GroupScaleRule::Reference) {  // undo this batch's updates so far
            for (std::size_t t = batch_start; t < k; ++t) v += errors[r][t - batch_start] * u[t][j];
          }
          values.push_back(v);
        }
        const GroupParams p = find_params(std::span<const double>(values), qc);
        q.scales(ri, g) = p.scale;
        q.zeros(ri, g) = p.zero;
      }
      const GroupParams p{q.scales(ri, g), q.zeros(ri, g)};
      const std::int32_t code = quantize_value(w[r][k], p, qc.maxq());
      q.codes(ri, static_cast<std::int64_t>(perm[k])) = static_cast<std::uint8_t>(code);
      const double e = (w[r][k] - dequantize_value(code, p)) / u[k][k];
      errors[r].push_back(e);
      for (std::size_t j = k + 1; j < n; ++j) w[r][j] -= e * u[k][j];
    }
  }
  return result;
}

}  // namespace qshard::reference
