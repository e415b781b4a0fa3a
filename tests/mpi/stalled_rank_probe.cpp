// A stalled rank (issue 14: one stopped rank made the others spin forever). The last rank stops
// itself (SIGSTOP) when it reaches the Hessian all-reduce of layer 1; the other ranks must end the
// job within --collective_timeout with a line naming the layer and the stage. Run by CTest under
// mpirun (tests/mpi/CMakeLists.txt: mpi.stalled_rank looks for that line).
#include <atomic>
#include <csignal>
#include <filesystem>
#include <iostream>

#include "qshard/backend/backend.hpp"
#include "qshard/backend/cpu_backend.hpp"
#include "qshard/comm/mpi.hpp"
#include "qshard/pipeline/quantize_job.hpp"

namespace {

// A Hessian builder that stops this process in the all-reduce numbered `stop_at` (from 1).
class StoppingHessian final : public qshard::HessianBuilder {
 public:
  StoppingHessian(std::unique_ptr<qshard::HessianBuilder> inner, std::atomic<int>& reduces,
                  int stop_at)
      : inner_(std::move(inner)), reduces_(reduces), stop_at_(stop_at) {}
  std::int64_t features() const override { return inner_->features(); }
  void add(const qshard::MatrixF& x) override { inner_->add(x); }
  void all_reduce(qshard::Communicator& comm) override {
    if (++reduces_ == stop_at_) std::raise(SIGSTOP);
    inner_->all_reduce(comm);
  }
  std::shared_ptr<const qshard::Hessian> reduced() const override { return inner_->reduced(); }
  double add_seconds() const override { return inner_->add_seconds(); }
  std::int64_t tokens() const override { return inner_->tokens(); }

 private:
  std::unique_ptr<qshard::HessianBuilder> inner_;
  std::atomic<int>& reduces_;
  int stop_at_;
};

// The CPU backend, with Hessian builders that stop in all-reduce `stop_at` (0: never).
class StoppingBackend final : public qshard::Backend {
 public:
  explicit StoppingBackend(int stop_at) : inner_(qshard::make_cpu_backend()), stop_at_(stop_at) {}
  std::string name() const override { return inner_->name(); }
  const qshard::Solver& solver() const override { return inner_->solver(); }
  std::unique_ptr<qshard::HessianBuilder> make_hessian(std::int64_t features) const override {
    return std::make_unique<StoppingHessian>(inner_->make_hessian(features), reduces_, stop_at_);
  }
  std::unique_ptr<qshard::UnitStore> store_units(
      const qshard::ModelConfig& config, std::vector<qshard::MatrixF> units) const override {
    return inner_->store_units(config, std::move(units));
  }
  std::unique_ptr<qshard::ResidentLayer> load_layer(
      const qshard::ModelConfig& config, const qshard::LayerWeights& weights,
      const qshard::RotaryTable& rope) const override {
    return inner_->load_layer(config, weights, rope);
  }
  std::unique_ptr<qshard::QuantizedModule> gather_tiles(std::unique_ptr<qshard::SolvedTiles> mine,
                                                        const qshard::TileDeal& deal,
                                                        qshard::Communicator& comm) const override {
    return inner_->gather_tiles(std::move(mine), deal, comm);
  }

 private:
  std::unique_ptr<qshard::Backend> inner_;
  int stop_at_;
  mutable std::atomic<int> reduces_{0};
};

}  // namespace

int main(int argc, char** argv) {
  qshard::MpiSession mpi(&argc, &argv);
  qshard::MpiCommunicator comm;
  const std::filesystem::path dir = "stalled-rank-probe";  // in CTest's working directory
  if (comm.is_root()) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  comm.barrier();
  const qshard::ParsedOptions parsed = qshard::parse_job_options(
      std::vector<std::string>{"--model", "synthetic:tiny", "--samples", "4", "--seq_len", "16",
                               "--batch_samples", "2", "--backend", "cpu", "--quiet",
                               "--collective_timeout", "2", "--out", (dir / "out.h5").string()});
  // Four stages per layer (true-sequential, all modules): all-reduce 5 is layer 1's first.
  const StoppingBackend backend(comm.rank() == comm.size() - 1 ? 5 : 0);
  qshard::run_quantize_job(*parsed.options, comm, backend, "stalled-rank probe", std::cout);
  std::cerr << "stalled-rank probe: the job completed although a rank had stopped\n";
  return 1;
}
