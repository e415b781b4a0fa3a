#pragma once
// The GPTQ solver interface, implemented by the CPU backend (backends/cpu) and the CUDA backend.
//
// A layer's Hessian is factorised once (dead inputs, damping, act_order permutation, the upper
// Cholesky factor of H^-1) and then any number of row ranges of any weight matrices that share
// that input are solved against it: this is how q/k/v share one factorisation and how ranks split
// a layer's solve into fixed row tiles.
#include <cstdint>
#include <memory>
#include <vector>

#include "qshard/core/matrix.hpp"
#include "qshard/quant/quant_config.hpp"
#include "qshard/quant/quantized_weight.hpp"

namespace qshard {

struct HessianFactor {
  std::int64_t columns = 0;
  std::vector<std::int32_t>
      perm;  // solve order: perm[k] is the k-th column solved (identity without act_order)
  std::vector<std::uint8_t> dead;  // dead[c] = 1 when H[c, c] == 0 (original column order)
  MatrixD hinv_upper;              // upper Cholesky factor U of H^-1 (permuted), H^-1 = U^T U
  double damp_percent_used = 0.0;  // the damping that made H positive definite
  int damp_steps = 0;              // how often it was raised
};

class Solver {
 public:
  virtual ~Solver() = default;
  // Throws qshard::Error for a non-square H, NaN/Inf in H, or when no damping up to the bound
  // makes it positive definite.
  virtual HessianFactor factorize(const MatrixD& hessian, const GptqOptions& options) const = 0;
  // GPTQ of `weight` (rows x columns, fp32) against a factorisation of its input's Hessian.
  // Each row's result depends on that row alone (and H), whatever rows are solved with it.
  virtual QuantizedWeight solve(const MatrixF& weight, const HessianFactor& factor,
                                const GptqOptions& options) const = 0;
  // True when each row's result is bitwise the same whichever rows are solved with it, so that
  // callers may stack many row tiles into one call (the CUDA solver: fixed panels, a warp per row).
  virtual bool rows_independent() const { return false; }
  // tr((W - Q) H (W - Q)^T) in double (reconstruction_objective below); a GPU solver computes it
  // on its device, keeping H there between calls with the same H.
  virtual double objective(const MatrixF& weight, const MatrixF& quantized,
                           const MatrixD& hessian) const;
};

std::unique_ptr<Solver> make_cpu_solver();

// Round-to-nearest with the same scales rule (min/max or mse over the original weights).
QuantizedWeight quantize_rtn(const MatrixF& weight, const QuantConfig& config);

// ||W X - Q X||^2 / n * 2, computed exactly as tr((W - Q) H (W - Q)^T) in double.
double reconstruction_objective(const MatrixF& weight, const MatrixF& quantized,
                                const MatrixD& hessian);
// Throws qshard::Error unless W and Q have one shape and H is square over their columns.
void check_objective_shapes(const MatrixF& weight, const MatrixF& quantized,
                            const MatrixD& hessian);

}  // namespace qshard
