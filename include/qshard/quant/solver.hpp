#pragma once
// The GPTQ solver interface, implemented by the CPU backend (backend/cpu) and the CUDA backend.
//
// A layer's Hessian is factorised once (dead inputs, damping, act_order permutation, the upper
// Cholesky factor of H^-1) and then any number of row ranges of any weight matrices that share
// that input are solved against it: this is how q/k/v share one factorisation and how ranks split
// a layer's solve into fixed row tiles.
//
// Hessians and factorisations are handles: each backend keeps them where it computes (host memory
// for the CPU, the GPU's memory for CUDA), the way ggml's backends own their buffers. What the
// pipeline needs on the host (permutation, dead inputs, damping) is readable from every
// factorisation; the matrices themselves cross no bus unless a caller asks for a host copy.
#include <cstdint>
#include <memory>
#include <vector>

#include "qshard/core/matrix.hpp"
#include "qshard/quant/quant_config.hpp"
#include "qshard/quant/quantized_weight.hpp"

namespace qshard {

// A reduced Hessian H = 2 X^T X / n where a backend holds it.
class Hessian {
 public:
  virtual ~Hessian() = default;
  virtual std::int64_t features() const = 0;
  // The host matrix when the Hessian lives in host memory, else nullptr.
  virtual const MatrixD* host() const { return nullptr; }
  // A host copy (a download for a device Hessian: for checks and tests).
  virtual MatrixD to_host() const = 0;
};

// A Hessian in host memory (the CPU backend's, and any host matrix handed to a solver).
std::shared_ptr<const Hessian> make_host_hessian(MatrixD hessian);

// A factorisation of one Hessian, shared and immutable. The host-readable part; each backend
// derives its own with U where it computes.
struct Factorization {
  virtual ~Factorization() = default;
  std::int64_t columns = 0;
  std::vector<std::int32_t>
      perm;  // solve order: perm[k] is the k-th column solved (identity without act_order)
  std::vector<std::uint8_t> dead;  // dead[c] = 1 when H[c, c] == 0 (original column order)
  double damp_percent_used = 0.0;  // the damping that made H positive definite
  int damp_steps = 0;              // how often it was raised
};

// A factorisation with U in host memory (the CPU solver's; any solver accepts one).
struct HessianFactor : Factorization {
  MatrixD hinv_upper;  // upper Cholesky factor U of H^-1 (permuted), H^-1 = U^T U
};

class Solver {
 public:
  virtual ~Solver() = default;
  // Throws qshard::Error for NaN/Inf in H, or when no damping up to the bound makes it positive
  // definite. A Hessian held by another backend is copied in.
  virtual std::shared_ptr<const Factorization> factorize(const Hessian& hessian,
                                                         const GptqOptions& options) const = 0;
  // Many independent factorisations (a sparse layer's experts), in order; each result is bitwise
  // the factorize() of its Hessian. By default one after another; a GPU solver overlaps them.
  virtual std::vector<std::shared_ptr<const Factorization>> factorize_many(
      const std::vector<const Hessian*>& hessians, const GptqOptions& options) const;
  // The same with U returned in host memory (double): for checks, tests and benchmarks.
  virtual HessianFactor factorize_host(const MatrixD& hessian,
                                       const GptqOptions& options) const = 0;
  // GPTQ of `weight` (rows x columns, fp32) against a factorisation of its input's Hessian (this
  // solver's, or a HessianFactor). Each row's result depends on that row alone (and H), whatever
  // rows are solved with it.
  virtual QuantizedWeight solve(const MatrixF& weight, const Factorization& factor,
                                const GptqOptions& options) const = 0;
  // True when each row's result is bitwise the same whichever rows are solved with it, so that
  // callers may stack many row tiles into one call (the CUDA solver: fixed panels, a warp per row).
  virtual bool rows_independent() const { return false; }
  // tr((W - Q) H (W - Q)^T) in double (reconstruction_objective below); a GPU solver computes it
  // on its device, from a device Hessian without a transfer.
  virtual double objective(const MatrixF& weight, const MatrixF& quantized,
                           const Hessian& hessian) const;

  // Host conveniences of the above.
  HessianFactor factorize(const MatrixD& hessian, const GptqOptions& options) const {
    return factorize_host(hessian, options);
  }
  double objective(const MatrixF& weight, const MatrixF& quantized, const MatrixD& hessian) const;
};

// Round-to-nearest with the same scales rule (min/max or mse over the original weights).
QuantizedWeight quantize_rtn(const MatrixF& weight, const QuantConfig& config);

// ||W X - Q X||^2 / n * 2, computed exactly as tr((W - Q) H (W - Q)^T) in double.
double reconstruction_objective(const MatrixF& weight, const MatrixF& quantized,
                                const MatrixD& hessian);
// Throws qshard::Error unless W and Q have one shape and H is square over their columns.
void check_objective_shapes(const MatrixF& weight, const MatrixF& quantized,
                            std::int64_t hessian_features);

}  // namespace qshard
