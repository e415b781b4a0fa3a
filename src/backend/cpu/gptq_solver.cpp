// The blocked GPTQ solver on the CPU (double precision, OpenBLAS/LAPACKE).
//
// factorize(): the shared preparation (quant/gptq_plan.hpp: dead inputs, act_order, stepped
// damping) around this backend's factorisation. The upper Cholesky factor U of H^-1
// (H^-1 = U^T U) is obtained in two cubic passes instead of the reference's three (Cholesky,
// inverse, Cholesky): with J the reversal permutation, J H J = L L^T gives H = (J L J)(J L J)^T
// with J L J upper triangular, hence H^-1 = U^T U for U = (J L J)^-1 = J L^-1 J: one LAPACK dpotrf
// and one dtrtri.
//
// solve(): rows are solved in fixed panels of kPanelRows rows (the last one padded with zero rows),
// so every BLAS call has the same shape whatever row range is solved: a row's result depends on
// that row and H alone, bitwise. Lazy batches of block_size columns, each batch through every
// panel: inside a batch each row's columns are quantized in turn, the error (w - q) / U_kk
// propagated to the batch's later columns; after the batch the panel's trailing columns receive
// one DGEMM of its batch errors.
#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "qshard/backend/cpu_backend.hpp"
#include "qshard/core/error.hpp"
#include "qshard/quant/gptq_plan.hpp"
#include "qshard/quant/quantizer.hpp"
#include "qshard/quant/solver.hpp"

namespace qshard {
namespace {

// 128 rows: the pipeline's default tile (no padding there); on 4096 x 4096 it is faster than one
// DGEMM over all rows (U's batch rows stay in cache across panels), 64 is slower, 256 a little
// faster but pads small matrices more.
constexpr std::int64_t kPanelRows = 128;

// U such that A^-1 = U^T U for symmetric positive definite A (row-major, n x n). False when A is
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
    for (std::int64_t j = i; j < n; ++j) u(i, j) = reversed(n - 1 - i, n - 1 - j);  // lower->upper
  for (std::int64_t i = 0; i < n; ++i)
    if (!(u(i, i) > 0.0) || !std::isfinite(u(i, i))) return false;
  return true;
}

// One panel: w [kPanelRows, n] in solve order (updated in place), codes [kPanelRows, n] in solve
// order, scales and zeros [kPanelRows, groups] (read when plan.precomputed, else written).
struct Panel {
  MatrixD w;
  Matrix<std::uint8_t> codes;
  MatrixF scales;
  Matrix<std::int32_t> zeros;
};

// The values a group starting at solve position k = i1 + i is parameterised from (see
// GroupScaleRule). `row` is the row as it is now (in-block updates of columns < k applied),
// `batch_start` the batch's columns before the batch began, `errors` the row's batch errors.
void group_values(const double* row, const double* batch_start, const double* errors,
                  const MatrixD& u, std::int64_t i1, std::int64_t i2, std::int64_t k,
                  std::int64_t end, GroupScaleRule rule, std::vector<double>& out) {
  out.clear();
  for (std::int64_t j = k; j < end; ++j) {
    double v = row[j];
    if (rule == GroupScaleRule::Reference) {
      if (j < i2) v = batch_start[j - i1];  // misses this batch's in-block updates
    } else if (j >= i2) {
      // Exact: apply this batch's pending updates of the columns solved so far.
      for (std::int64_t t = i1; t < k; ++t) v -= errors[t - i1] * u(t, j);
    }
    out.push_back(v);
  }
}

// Batch [i1, i2) of one panel: each row's columns quantized in turn with the in-block updates,
// then the trailing columns' update W[:, i2:] -= Err @ U[i1:i2, i2:] (one DGEMM, always of shape
// [kPanelRows, n - i2, i2 - i1]). `current` holds each row's parameters of the open group.
void solve_batch(Panel& p, std::vector<GroupParams>& current, std::int64_t i1, std::int64_t i2,
                 const HessianFactor& f, const GroupPlan& plan, const GptqOptions& options) {
  const QuantConfig& qc = options.quant;
  const std::int32_t maxq = qc.maxq();
  const std::int64_t rows = p.w.rows(), n = p.w.cols(), gs = plan.group_size, count = i2 - i1;
  const MatrixD& u = f.hinv_upper;
  std::vector<double> values, batch_start;
  MatrixD err(rows, count);
  for (std::int64_t r = 0; r < rows; ++r) {
    double* row = &p.w(r, 0);
    double* errors = &err(r, 0);
    GroupParams& params = current[static_cast<std::size_t>(r)];
    batch_start.assign(row + i1, row + i2);
    for (std::int64_t k = i1; k < i2; ++k) {
      const std::int64_t g = plan.group_of_position[static_cast<std::size_t>(k)];
      if (plan.precomputed) {
        params = {p.scales(r, g), p.zeros(r, g)};
      } else if (k % gs == 0) {
        group_values(row, batch_start.data(), errors, u, i1, i2, k, std::min(n, k + gs),
                     options.group_rule, values);
        params = find_params(std::span<const double>(values), qc);
        p.scales(r, g) = params.scale;
        p.zeros(r, g) = params.zero;
      }
      const double value = row[k];
      const std::int32_t code = quantize_value(value, params, maxq);
      p.codes(r, k) = static_cast<std::uint8_t>(code);
      const double e = (value - dequantize_value(code, params)) / u(k, k);
      errors[k - i1] = e;
      const double* hrow = &u(k, 0);
      for (std::int64_t j = k + 1; j < i2; ++j) row[j] -= e * hrow[j];
    }
  }
  if (i2 < n) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows),
                static_cast<int>(n - i2), static_cast<int>(count), -1.0, err.data(),
                static_cast<int>(count), &u(i1, i2), static_cast<int>(n), 1.0, &p.w(0, i2),
                static_cast<int>(n));
  }
}

// The CPU solver's factorisations are HessianFactors (U in host memory); it solves against no
// other kind.
const HessianFactor& host_factor(const Factorization& factor) {
  const auto* f = dynamic_cast<const HessianFactor*>(&factor);
  require(f != nullptr, "CPU solver: the factorisation is held by another backend");
  return *f;
}

class CpuSolver final : public Solver {
 public:
  std::shared_ptr<const Factorization> factorize(const Hessian& hessian,
                                                 const GptqOptions& options) const override {
    if (const MatrixD* h = hessian.host())
      return std::make_shared<HessianFactor>(factorize_host(*h, options));
    return std::make_shared<HessianFactor>(factorize_host(hessian.to_host(), options));
  }
  HessianFactor factorize_host(const MatrixD& hessian, const GptqOptions& options) const override {
    return factorize_hessian(hessian, options, inverse_upper_cholesky);
  }

  QuantizedWeight solve(const MatrixF& weight, const Factorization& factor,
                        const GptqOptions& options) const override {
    const HessianFactor& f = host_factor(factor);
    options.validate();
    const std::int64_t rows = weight.rows(), n = weight.cols();
    require(n == f.columns && f.hinv_upper.rows() == n && f.hinv_upper.cols() == n,
            "solve: weight has ", n, " columns, the factorisation ", f.columns);
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < n; ++c)
        require(std::isfinite(weight(r, c)), "weight has a non-finite value ", weight(r, c),
                " at (", r, ", ", c, ")");
    const GroupPlan plan = plan_groups(f, options);

    QuantizedWeight q = QuantizedWeight::allocate(options.quant.bits, options.quant.group_size,
                                                  rows, n, plan.groups, plan.g_idx);
    // All panels advance batch by batch, so U[i1:i2, i2:] is read from cache by every panel.
    std::vector<Panel> panels;
    for (std::int64_t r0 = 0; r0 < rows; r0 += kPanelRows) {
      const std::int64_t used = std::min(kPanelRows, rows - r0);
      MatrixF slice(kPanelRows, n, 0.0f);  // zero rows pad the last panel
      std::copy(weight.data() + r0 * n, weight.data() + (r0 + used) * n, slice.data());
      Panel& p = panels.emplace_back(
          Panel{permuted_weights(slice, f), Matrix<std::uint8_t>(kPanelRows, n),
                MatrixF(kPanelRows, plan.groups), Matrix<std::int32_t>(kPanelRows, plan.groups)});
      if (plan.precomputed)
        precompute_group_params(slice, f, plan, options.quant, p.scales, p.zeros);
    }
    std::vector<std::vector<GroupParams>> current(
        panels.size(), std::vector<GroupParams>(static_cast<std::size_t>(kPanelRows)));
    for (std::int64_t i1 = 0; i1 < n; i1 += options.block_size)
      for (std::size_t b = 0; b < panels.size(); ++b)
        solve_batch(panels[b], current[b], i1, std::min(n, i1 + options.block_size), f, plan,
                    options);
    for (std::size_t b = 0; b < panels.size(); ++b) {
      const Panel& p = panels[b];
      const std::int64_t r0 = static_cast<std::int64_t>(b) * kPanelRows;
      for (std::int64_t r = 0; r < std::min(kPanelRows, rows - r0); ++r) {
        for (std::int64_t k = 0; k < n; ++k)
          q.codes(r0 + r, f.perm[static_cast<std::size_t>(k)]) = p.codes(r, k);
        std::copy_n(&p.scales(r, 0), plan.groups, &q.scales(r0 + r, 0));
        std::copy_n(&p.zeros(r, 0), plan.groups, &q.zeros(r0 + r, 0));
      }
    }
    return q;
  }
};

}  // namespace

std::unique_ptr<Solver> make_cpu_solver() { return std::make_unique<CpuSolver>(); }

}  // namespace qshard
