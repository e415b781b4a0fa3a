// The blocked GPTQ solver on the CPU (double precision, OpenBLAS/LAPACKE).
//
// factorize(): dead inputs (H_ii = 0) get H_ii = 1, act_order permutes by descending diag(H)
// (stable: ties keep column order), damping lambda = damp * mean(diag H) is added, and the upper
// Cholesky factor U of H^-1 (H^-1 = U^T U) is obtained in two cubic passes instead of the
// reference's three (Cholesky, inverse, Cholesky): with J the reversal permutation, J H J = L L^T
// gives H = (J L J)(J L J)^T with J L J upper triangular, hence H^-1 = U^T U for
// U = (J L J)^-1 = J L^-1 J: one Cholesky and one triangular inverse.
//
// solve(): lazy batches of block_size columns; inside a batch each column is quantized, its
// error (w - q) / U_ii propagated to the batch's later columns, and after the batch the trailing
// columns receive one matrix product of the batch errors.
#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "qshard/core/error.hpp"
#include "qshard/quant/quantizer.hpp"
#include "qshard/quant/solver.hpp"

namespace qshard {
namespace {

// U such that (A)^-1 = U^T U for symmetric positive definite A (row-major, n x n). False when A is
// not positive definite.
bool inverse_upper_cholesky(const MatrixD& a, MatrixD& u) {
  const std::int64_t n = a.rows();
  MatrixD reversed(n, n);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j) reversed(i, j) = a(n - 1 - i, n - 1 - j);
  const auto ni = static_cast<lapack_int>(n);
  if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', ni, reversed.data(), ni) != 0) return false;
  if (LAPACKE_dtrtri(LAPACK_ROW_MAJOR, 'L', 'N', ni, reversed.data(), ni) != 0) return false;
  u = MatrixD(n, n);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = i; j < n; ++j)
      u(i, j) = reversed(n - 1 - i, n - 1 - j);  // lower -> upper
  for (std::int64_t i = 0; i < n; ++i)
    if (!(u(i, i) > 0.0) || !std::isfinite(u(i, i))) return false;
  return true;
}

class CpuSolver final : public Solver {
 public:
  HessianFactor factorize(const MatrixD& hessian, const GptqOptions& options) const override {
    options.validate();
    const std::int64_t n = hessian.rows();
    require(n > 0 && hessian.cols() == n, "Hessian must be square (got [", hessian.rows(), ", ",
            hessian.cols(), "])");
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < n; ++j)
        require(std::isfinite(hessian(i, j)), "Hessian has a non-finite value ", hessian(i, j),
                " at (", i, ", ", j, ")");
    HessianFactor f;
    f.columns = n;
    f.dead.assign(static_cast<std::size_t>(n), 0);
    MatrixD h = hessian;
    for (std::int64_t i = 0; i < n; ++i) {
      if (h(i, i) == 0.0) {
        f.dead[static_cast<std::size_t>(i)] = 1;
        h(i, i) = 1.0;
      }
    }
    f.perm.resize(static_cast<std::size_t>(n));
    std::iota(f.perm.begin(), f.perm.end(), 0);
    if (options.act_order) {
      std::stable_sort(f.perm.begin(), f.perm.end(),
                       [&](std::int32_t a, std::int32_t b) { return h(a, a) > h(b, b); });
    }
    MatrixD permuted(n, n);
    double mean_diag = 0.0;
    for (std::int64_t i = 0; i < n; ++i) {
      for (std::int64_t j = 0; j < n; ++j)
        permuted(i, j) =
            h(f.perm[static_cast<std::size_t>(i)], f.perm[static_cast<std::size_t>(j)]);
      mean_diag += permuted(i, i);
    }
    mean_diag /= static_cast<double>(n);
    double damp = options.damp_percent;
    for (int step = 0; step <= options.max_damp_steps; ++step) {
      MatrixD damped = permuted;
      for (std::int64_t i = 0; i < n; ++i) damped(i, i) += damp * mean_diag;
      if (inverse_upper_cholesky(damped, f.hinv_upper)) {
        f.damp_percent_used = damp;
        f.damp_steps = step;
        return f;
      }
      damp = damp > 0.0 ? damp * 10.0 : 0.01;
    }
    throw Error(str("Hessian of ", n, " features is not positive definite even with damp_percent ",
                    damp / 10.0, " after ", options.max_damp_steps,
                    " increases (too few calibration tokens, or degenerate inputs)"));
  }

  QuantizedWeight solve(const MatrixF& weight, const HessianFactor& f,
                        const GptqOptions& options) const override {
    options.validate();
    const QuantConfig& qc = options.quant;
    const std::int64_t rows = weight.rows(), n = weight.cols();
    require(n == f.columns, "solve: weight has ", n, " columns, the factorisation ", f.columns);
    const std::int32_t maxq = qc.maxq();
    const std::int64_t gs = qc.group_size > 0 ? qc.group_size : n;
    const std::int64_t groups = group_count(n, qc.group_size);

    // W in double, dead columns zeroed, columns in solve order.
    MatrixD original(rows, n);
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < n; ++c) {
        const float v = weight(r, c);
        require(std::isfinite(v), "weight has a non-finite value ", v, " at (", r, ", ", c, ")");
        original(r, c) = f.dead[static_cast<std::size_t>(c)] ? 0.0 : static_cast<double>(v);
      }
    MatrixD w(rows, n);
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t k = 0; k < n; ++k)
        w(r, k) = original(r, f.perm[static_cast<std::size_t>(k)]);

    QuantizedWeight q;
    q.bits = qc.bits;
    q.group_size = qc.group_size;
    q.codes = Matrix<std::uint8_t>(rows, n);
    q.scales = MatrixF(rows, groups);
    q.zeros = Matrix<std::int32_t>(rows, groups);
    q.g_idx.resize(static_cast<std::size_t>(n));

    // Group of the k-th solved column, and (static groups) parameters from the original weights.
    std::vector<std::int32_t> group_of_position(static_cast<std::size_t>(n));
    for (std::int64_t k = 0; k < n; ++k) {
      const std::int64_t column = f.perm[static_cast<std::size_t>(k)];
      const std::int64_t g = options.static_groups ? column / gs : k / gs;
      group_of_position[static_cast<std::size_t>(k)] = static_cast<std::int32_t>(g);
      q.g_idx[static_cast<std::size_t>(column)] = static_cast<std::int32_t>(g);
    }
    std::vector<GroupParams> current(static_cast<std::size_t>(rows));
    const auto set_params = [&](std::int64_t r, std::int64_t g, const GroupParams& p) {
      current[static_cast<std::size_t>(r)] = p;
      q.scales(r, g) = p.scale;
      q.zeros(r, g) = p.zero;
    };
    if (options.static_groups || qc.group_size <= 0) {
      for (std::int64_t r = 0; r < rows; ++r) {
        for (std::int64_t g = 0; g < groups; ++g) {
          const std::int64_t begin = g * gs, end = std::min(n, begin + gs);
          const std::span<const double> values(original.data() + r * n + begin,
                                               static_cast<std::size_t>(end - begin));
          const GroupParams p = find_params(values, qc);
          q.scales(r, g) = p.scale;
          q.zeros(r, g) = p.zero;
        }
      }
    }

    const std::int64_t block = options.block_size;
    std::vector<double> group_values(static_cast<std::size_t>(gs));
    for (std::int64_t i1 = 0; i1 < n; i1 += block) {
      const std::int64_t i2 = std::min(n, i1 + block), count = i2 - i1;
      MatrixD err(rows, count);
      MatrixD block_start;  // the batch as it was when it started (for the reference group rule)
      if (options.group_rule == GroupScaleRule::Reference && !options.static_groups &&
          qc.group_size > 0) {
        block_start = MatrixD(rows, count);
        for (std::int64_t r = 0; r < rows; ++r)
          std::copy(&w(r, i1), &w(r, i1) + count, &block_start(r, 0));
      }
      for (std::int64_t i = 0; i < count; ++i) {
        const std::int64_t k = i1 + i;
        const std::int64_t g = group_of_position[static_cast<std::size_t>(k)];
        const bool group_starts = !options.static_groups && qc.group_size > 0 && k % gs == 0;
        const double d = f.hinv_upper(k, k);
        for (std::int64_t r = 0; r < rows; ++r) {
          if (options.static_groups || qc.group_size <= 0) {
            current[static_cast<std::size_t>(r)] = {q.scales(r, g), q.zeros(r, g)};
          } else if (group_starts) {
            const std::int64_t end = std::min(n, k + gs);
            for (std::int64_t j = k; j < end; ++j) {
              double v = w(r, j);
              if (options.group_rule == GroupScaleRule::Reference) {
                if (j < i2) v = block_start(r, j - i1);  // misses this batch's in-block updates
              } else if (j >= i2) {
                // Exact: apply this batch's pending updates of the columns solved so far.
                for (std::int64_t t = 0; t < i; ++t) v -= err(r, t) * f.hinv_upper(i1 + t, j);
              }
              group_values[static_cast<std::size_t>(j - k)] = v;
            }
            set_params(r, g,
                       find_params(std::span<const double>(group_values.data(),
                                                           static_cast<std::size_t>(end - k)),
                                   qc));
          }
          const GroupParams& p = current[static_cast<std::size_t>(r)];
          const double value = w(r, k);
          const std::int32_t code = quantize_value(value, p, maxq);
          q.codes(r, f.perm[static_cast<std::size_t>(k)]) = static_cast<std::uint8_t>(code);
          const double e = (value - dequantize_value(code, p)) / d;
          err(r, i) = e;
          double* row = &w(r, 0);
          const double* hrow = &f.hinv_upper(k, 0);
          for (std::int64_t j = k + 1; j < i2; ++j) row[j] -= e * hrow[j];
        }
      }
      if (i2 < n && rows > 0) {
        // W[:, i2:] -= Err @ U[i1:i2, i2:]
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows),
                    static_cast<int>(n - i2), static_cast<int>(count), -1.0, err.data(),
                    static_cast<int>(count), &f.hinv_upper(i1, i2), static_cast<int>(n), 1.0,
                    &w(0, i2), static_cast<int>(n));
      }
    }
    return q;
  }
};

}  // namespace

std::unique_ptr<Solver> make_cpu_solver() { return std::make_unique<CpuSolver>(); }

}  // namespace qshard
