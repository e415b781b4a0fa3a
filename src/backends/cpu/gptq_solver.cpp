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
#include "qshard/quant/gptq_plan.hpp"
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
    return factorize_hessian(hessian, options, inverse_upper_cholesky);
  }

  QuantizedWeight solve(const MatrixF& weight, const HessianFactor& f,
                        const GptqOptions& options) const override {
    options.validate();
    const QuantConfig& qc = options.quant;
    const std::int64_t rows = weight.rows(), n = weight.cols();
    const std::int32_t maxq = qc.maxq();
    const GroupPlan plan = plan_groups(f, options);
    const std::int64_t gs = plan.group_size;
    MatrixD w = permuted_weights(weight, f);

    QuantizedWeight q;
    q.bits = qc.bits;
    q.group_size = qc.group_size;
    q.codes = Matrix<std::uint8_t>(rows, n);
    q.scales = MatrixF(rows, plan.groups);
    q.zeros = Matrix<std::int32_t>(rows, plan.groups);
    q.g_idx = plan.g_idx;
    if (plan.precomputed) precompute_group_params(weight, f, plan, qc, q.scales, q.zeros);
    const std::vector<std::int32_t>& group_of_position = plan.group_of_position;
    std::vector<GroupParams> current(static_cast<std::size_t>(rows));
    const auto set_params = [&](std::int64_t r, std::int64_t g, const GroupParams& p) {
      current[static_cast<std::size_t>(r)] = p;
      q.scales(r, g) = p.scale;
      q.zeros(r, g) = p.zero;
    };

    const std::int64_t block = options.block_size;
    std::vector<double> group_values(static_cast<std::size_t>(gs));
    for (std::int64_t i1 = 0; i1 < n; i1 += block) {
      const std::int64_t i2 = std::min(n, i1 + block), count = i2 - i1;
      MatrixD err(rows, count);
      MatrixD block_start;  // the batch as it was when it started (for the reference group rule)
      if (options.group_rule == GroupScaleRule::Reference && !plan.precomputed) {
        block_start = MatrixD(rows, count);
        for (std::int64_t r = 0; r < rows; ++r)
          std::copy(&w(r, i1), &w(r, i1) + count, &block_start(r, 0));
      }
      for (std::int64_t i = 0; i < count; ++i) {
        const std::int64_t k = i1 + i;
        const std::int64_t g = group_of_position[static_cast<std::size_t>(k)];
        const bool group_starts = !plan.precomputed && k % gs == 0;
        const double d = f.hinv_upper(k, k);
        for (std::int64_t r = 0; r < rows; ++r) {
          if (plan.precomputed) {
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
