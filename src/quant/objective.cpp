// The exact reconstruction objective ||W X - Q X||^2 (up to 2/n): tr((W - Q) H (W - Q)^T).
#include <cblas.h>

#include "qshard/core/error.hpp"
#include "qshard/quant/solver.hpp"

namespace qshard {

void check_objective_shapes(const MatrixF& weight, const MatrixF& quantized,
                            const MatrixD& hessian) {
  require(weight.rows() == quantized.rows() && weight.cols() == quantized.cols(),
          "objective: weight and quantized weight differ in shape");
  require(hessian.rows() == weight.cols() && hessian.cols() == weight.cols(),
          "objective: Hessian of ", hessian.rows(), " features for ", weight.cols(), " columns");
}

double reconstruction_objective(const MatrixF& weight, const MatrixF& quantized,
                                const MatrixD& hessian) {
  check_objective_shapes(weight, quantized, hessian);
  const std::int64_t rows = weight.rows(), n = weight.cols();
  if (rows == 0 || n == 0) return 0.0;
  MatrixD diff(rows, n);
  for (std::size_t i = 0; i < diff.size(); ++i)
    diff.data()[i] =
        static_cast<double>(weight.data()[i]) - static_cast<double>(quantized.data()[i]);
  MatrixD dh(rows, n);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows),
              static_cast<int>(n), static_cast<int>(n), 1.0, diff.data(), static_cast<int>(n),
              hessian.data(), static_cast<int>(n), 0.0, dh.data(), static_cast<int>(n));
  double total = 0.0;
  for (std::size_t i = 0; i < diff.size(); ++i) total += diff.data()[i] * dh.data()[i];
  return total;
}

double Solver::objective(const MatrixF& weight, const MatrixF& quantized,
                         const MatrixD& hessian) const {
  return reconstruction_objective(weight, quantized, hessian);
}

}  // namespace qshard
