// The exact reconstruction objective ||W X - Q X||^2 (up to 2/n): tr((W - Q) H (W - Q)^T).
#include <cblas.h>

#include "qshard/core/error.hpp"
#include "qshard/quant/solver.hpp"

namespace qshard {
namespace {

class HostHessian final : public Hessian {
 public:
  explicit HostHessian(MatrixD h) : h_(std::move(h)) {
    require(h_.rows() == h_.cols(), "Hessian must be square (got [", h_.rows(), ", ", h_.cols(),
            "])");
  }
  std::int64_t features() const override { return h_.rows(); }
  const MatrixD* host() const override { return &h_; }
  MatrixD to_host() const override { return h_; }

 private:
  MatrixD h_;
};

}  // namespace

std::shared_ptr<const Hessian> make_host_hessian(MatrixD hessian) {
  return std::make_shared<HostHessian>(std::move(hessian));
}

void check_objective_shapes(const MatrixF& weight, const MatrixF& quantized,
                            std::int64_t hessian_features) {
  require(weight.rows() == quantized.rows() && weight.cols() == quantized.cols(),
          "objective: weight and quantized weight differ in shape");
  require(hessian_features == weight.cols(), "objective: Hessian of ", hessian_features,
          " features for ", weight.cols(), " columns");
}

double reconstruction_objective(const MatrixF& weight, const MatrixF& quantized,
                                const MatrixD& hessian) {
  require(hessian.rows() == hessian.cols(), "objective: Hessian is not square");
  check_objective_shapes(weight, quantized, hessian.rows());
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
                         const Hessian& hessian) const {
  if (const MatrixD* h = hessian.host()) return reconstruction_objective(weight, quantized, *h);
  return reconstruction_objective(weight, quantized, hessian.to_host());
}

double Solver::objective(const MatrixF& weight, const MatrixF& quantized,
                         const MatrixD& hessian) const {
  return objective(weight, quantized, *make_host_hessian(hessian));
}

}  // namespace qshard
