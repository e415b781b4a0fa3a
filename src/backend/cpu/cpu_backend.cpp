// The CPU backend: OpenBLAS/LAPACKE solver, exact fixed-point Hessians, the CPU decoder forward.
#include <chrono>
#include <optional>

#include "qshard/backend/backend.hpp"
#include "qshard/backend/cpu_backend.hpp"
#include "qshard/backend/host_tiles.hpp"
#include "qshard/core/error.hpp"
#include "qshard/core/parallel.hpp"
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
  std::int64_t tokens() const override { return accumulator_.tokens(); }
  void all_reduce(Communicator& comm) override {
    comm.all_reduce_sum(accumulator_.reduction_buffer());
  }
  void reduce_to(Communicator& comm, int owner) override {
    comm.reduce_sum(accumulator_.reduction_buffer(), owner);
  }
  std::shared_ptr<const Hessian> reduced() const override {
    return make_host_hessian(accumulator_.hessian());
  }

 private:
  HessianAccumulator accumulator_;
  double seconds_ = 0.0;
};

class HostUnits final : public UnitStore {
 public:
  explicit HostUnits(std::vector<MatrixF> units) : units_(std::move(units)) {}
  std::size_t size() const override { return units_.size(); }
  MatrixF unit(std::size_t index) const override { return units_.at(index); }
  std::int64_t rows(std::size_t index) const override { return units_.at(index).rows(); }
  const MatrixF& at(std::size_t index) const { return units_.at(index); }

 private:
  std::vector<MatrixF> units_;
};

const HostUnits& host_units(const UnitStore& units) {
  const auto* host = dynamic_cast<const HostUnits*>(&units);
  require(host != nullptr, "CPU backend: calibration units stored by another backend");
  return *host;
}

MatrixF row_slice(const MatrixF& m, std::int64_t begin, std::int64_t end) {
  MatrixF out(end - begin, m.cols());
  std::copy(m.data() + begin * m.cols(), m.data() + end * m.cols(), out.data());
  return out;
}

// The CPU forward reads the caller's weights in place (nothing to prepare or refresh) until a
// module is installed: then the layer forwards its own copy.
class CpuLayer final : public ResidentLayer {
 public:
  CpuLayer(const ModelConfig& config, const LayerWeights& weights, const Solver& solver,
           const RotaryTable& rope)
      : config_(config), source_(weights), weights_(&weights), solver_(solver), rope_(rope) {}
  void refresh(ModuleId) override {}

  std::unique_ptr<SolvedTiles> quantize_tiles(const TileJob& job) override {
    const GptqOptions& o = *job.options;
    const MatrixF& weight = source_[job.module];
    const std::vector<std::size_t> tiles = tiles_of(*job.deal, job.rank);
    struct Prepared {
      MatrixF tile, rtn, result;  // the weights, RTN's and the result's dequantized values
      QuantizedWeight quantized;
      double objective_gptq = 0.0, objective_rtn = 0.0;
    };
    std::vector<Prepared> prepared(tiles.size());
    // Pure host work on job.threads threads; BLAS work (solves, objectives) one call at a time,
    // each on the BLAS threads (concurrent OpenBLAS calls are not reproducible).
    parallel_for(tiles.size(), job.threads, [&](std::size_t k) {
      const RowTile& t = (*job.deal)[tiles[k]];
      Prepared& p = prepared[k];
      p.tile = row_slice(weight, t.begin, t.end);
      QuantizedWeight rtn = quantize_rtn(p.tile, o.quant);
      p.rtn = rtn.dequantize();
      if (job.factor == nullptr) p.quantized = std::move(rtn);
    });
    if (job.factor != nullptr)
      for (Prepared& p : prepared) p.quantized = solver_.solve(p.tile, *job.factor, o);
    parallel_for(tiles.size(), job.threads,
                 [&](std::size_t k) { prepared[k].result = prepared[k].quantized.dequantize(); });
    for (Prepared& p : prepared) {
      p.objective_rtn = solver_.objective(p.tile, p.rtn, *job.hessian);
      p.objective_gptq = job.factor == nullptr ? p.objective_rtn
                                               : solver_.objective(p.tile, p.result, *job.hessian);
    }
    std::vector<QuantizedWeight> parts;
    for (Prepared& p : prepared) parts.push_back(std::move(p.quantized));
    auto solved =
        std::make_unique<HostSolvedTiles>(parts.empty() ? QuantizedWeight{} : stack_rows(parts));
    for (const Prepared& p : prepared) {
      solved->objective_gptq.push_back(p.objective_gptq);
      solved->objective_rtn.push_back(p.objective_rtn);
    }
    return solved;
  }

  void install(ModuleId id, const QuantizedModule& module) override {
    const auto* host = dynamic_cast<const HostQuantizedModule*>(&module);
    require(host != nullptr, "CPU backend: quantized module held by another backend");
    if (!own_) {
      own_ = source_;
      weights_ = &*own_;
    }
    (*own_)[id] = host->weight().dequantize();
  }
  MatrixF forward(const MatrixF& hidden, std::int64_t seq_len, const LayerTargets& targets,
                  std::optional<LinearInput> stop_after) override {
    return forward_layer(
        config_, *weights_, rope_, hidden, seq_len,
        [&](InputId input, const MatrixF& x) {
          if (HessianBuilder* h = targets.hessian(input)) h->add(x);
          if (targets.capture) targets.capture(input, x);
        },
        stop_after, targets.experts);
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
      next.push_back(forward_layer(config_, *weights_, rope_, in.at(i), seq_len));
    return std::make_unique<HostUnits>(std::move(next));
  }

 private:
  const ModelConfig& config_;
  const LayerWeights& source_;
  std::optional<LayerWeights> own_;  // after the first install()
  const LayerWeights* weights_;      // what the forward reads: source_ or own_
  const Solver& solver_;
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
    return std::make_unique<CpuLayer>(config, weights, *solver_, rope);
  }
  std::unique_ptr<QuantizedModule> gather_tiles(std::unique_ptr<SolvedTiles> mine,
                                                const TileDeal& deal,
                                                Communicator& comm) const override {
    const auto* host = dynamic_cast<const HostSolvedTiles*>(mine.get());
    require(host != nullptr, "CPU backend: solved tiles held by another backend");
    auto module = std::make_unique<HostQuantizedModule>(
        comm.size() == 1 ? host->rows() : all_gather_tiles(host->rows(), deal, comm));
    sum_tile_objectives(*mine, deal, comm, *module);
    return module;
  }

 private:
  std::unique_ptr<Solver> solver_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace qshard
