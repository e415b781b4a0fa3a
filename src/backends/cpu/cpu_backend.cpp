// The CPU backend: OpenBLAS/LAPACKE solver, exact fixed-point Hessians, the CPU decoder forward.
#include "qshard/backend/backend.hpp"
#include "qshard/quant/hessian.hpp"

namespace qshard {
namespace {

class CpuHessianBuilder final : public HessianBuilder {
 public:
  explicit CpuHessianBuilder(std::int64_t features) : accumulator_(features) {}
  std::int64_t features() const override { return accumulator_.features(); }
  void add(const MatrixF& x) override { accumulator_.add_unit(x); }
  void all_reduce(Communicator& comm) override {
    comm.all_reduce_sum(accumulator_.reduction_buffer());
  }
  MatrixD hessian() const override { return accumulator_.hessian(); }

 private:
  HessianAccumulator accumulator_;
};

class CpuBackend final : public Backend {
 public:
  CpuBackend() : solver_(make_cpu_solver()) {}
  std::string name() const override { return "cpu"; }
  const Solver& solver() const override { return *solver_; }
  std::unique_ptr<HessianBuilder> make_hessian(std::int64_t features) const override {
    return std::make_unique<CpuHessianBuilder>(features);
  }
  MatrixF forward_layer(const ModelConfig& config, const LayerWeights& weights,
                        const RotaryTable& rope, const MatrixF& hidden, std::int64_t seq_len,
                        const CaptureFn& capture,
                        std::optional<LinearInput> stop_after) const override {
    return qshard::forward_layer(config, weights, rope, hidden, seq_len, capture, stop_after);
  }

 private:
  std::unique_ptr<Solver> solver_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace qshard
