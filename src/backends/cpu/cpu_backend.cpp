// The CPU backend: OpenBLAS/LAPACKE solver, exact fixed-point Hessians, the CPU decoder forward.
#include <chrono>

#include "qshard/backend/backend.hpp"
#include "qshard/core/error.hpp"
#include "qshard/quant/hessian.hpp"

namespace qshard {
namespace {

class CpuHessianBuilder final : public HessianBuilder {
 public:
  explicit CpuHessianBuilder(std::int64_t features) : accumulator_(features) {}
  std::int64_t features() const override { return accumulator_.features(); }
  void add(const MatrixF& x) override {
    const auto start = std::chrono::steady_clock::now();
    accumulator_.add_unit(x);
    seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  double add_seconds() const override { return seconds_; }
  void all_reduce(Communicator& comm) override {
    comm.all_reduce_sum(accumulator_.reduction_buffer());
  }
  MatrixD hessian() const override { return accumulator_.hessian(); }

 private:
  HessianAccumulator accumulator_;
  double seconds_ = 0.0;
};

class HostUnits final : public UnitStore {
 public:
  explicit HostUnits(std::vector<MatrixF> units) : units_(std::move(units)) {}
  std::size_t size() const override { return units_.size(); }
  MatrixF unit(std::size_t index) const override { return units_.at(index); }
  const MatrixF& at(std::size_t index) const { return units_.at(index); }

 private:
  std::vector<MatrixF> units_;
};

const HostUnits& host_units(const UnitStore& units) {
  const auto* host = dynamic_cast<const HostUnits*>(&units);
  require(host != nullptr, "CPU backend: calibration units stored by another backend");
  return *host;
}

// The CPU forward reads the caller's weights in place: nothing to prepare or refresh.
class CpuLayer final : public ResidentLayer {
 public:
  CpuLayer(const ModelConfig& config, const LayerWeights& weights, const RotaryTable& rope)
      : config_(config), weights_(weights), rope_(rope) {}
  void refresh(Linear) override {}
  MatrixF forward(const MatrixF& hidden, std::int64_t seq_len, const LayerTargets& targets,
                  std::optional<LinearInput> stop_after) override {
    return forward_layer(
        config_, weights_, rope_, hidden, seq_len,
        [&](LinearInput input, const MatrixF& x) {
          if (HessianBuilder* h = targets.hessian(input)) h->add(x);
          if (targets.capture) targets.capture(input, x);
        },
        stop_after);
  }
  void forward_unit(const UnitStore& units, std::size_t index, std::int64_t seq_len,
                    const LayerTargets& targets, std::optional<LinearInput> stop_after) override {
    forward(host_units(units).at(index), seq_len, targets, stop_after);
  }
  std::unique_ptr<UnitStore> forward_all(const UnitStore& units, std::int64_t seq_len) override {
    const HostUnits& in = host_units(units);
    std::vector<MatrixF> next;
    next.reserve(in.size());
    for (std::size_t i = 0; i < in.size(); ++i)
      next.push_back(forward_layer(config_, weights_, rope_, in.at(i), seq_len));
    return std::make_unique<HostUnits>(std::move(next));
  }

 private:
  const ModelConfig& config_;
  const LayerWeights& weights_;
  const RotaryTable& rope_;
};

class CpuBackend final : public Backend {
 public:
  CpuBackend() : solver_(make_cpu_solver()) {}
  std::string name() const override { return "cpu"; }
  const Solver& solver() const override { return *solver_; }
  std::unique_ptr<HessianBuilder> make_hessian(std::int64_t features) const override {
    return std::make_unique<CpuHessianBuilder>(features);
  }
  std::unique_ptr<UnitStore> store_units(const ModelConfig&,
                                         std::vector<MatrixF> units) const override {
    return std::make_unique<HostUnits>(std::move(units));
  }
  std::unique_ptr<ResidentLayer> load_layer(const ModelConfig& config, const LayerWeights& weights,
                                            const RotaryTable& rope) const override {
    return std::make_unique<CpuLayer>(config, weights, rope);
  }

 private:
  std::unique_ptr<Solver> solver_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace qshard
