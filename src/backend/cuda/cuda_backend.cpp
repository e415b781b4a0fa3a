// The CUDA backend: decoder forward, Hessian builder and GPTQ solver on one GPU.
#include "qshard/backend/cuda_backend.hpp"

#include "cuda_hessian.hpp"
#include "cuda_layer.hpp"
#include "cuda_solver.hpp"
#include "cuda_tiles.hpp"
#include "device.hpp"
#include "qshard/comm/communicator.hpp"
#include "qshard/core/error.hpp"
#include "unit_transfer.hpp"

namespace qshard {
namespace {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device), solver_(device) {
    cuda::keep_freed_device_memory(device);  // layers of one model reuse the same buffers
  }
  std::string name() const override { return "cuda"; }
  const Solver& solver() const override { return solver_; }
  std::unique_ptr<HessianBuilder> make_hessian(std::int64_t features) const override {
    return std::make_unique<cuda::CudaHessianBuilder>(device_, features);
  }
  std::unique_ptr<UnitStore> store_units(const ModelConfig& config,
                                         std::vector<MatrixF> units) const override {
    auto store = std::make_unique<cuda::DeviceUnits>(
        device_, cuda::activation_dtype_for(config.torch_dtype), config.hidden_size);
    for (MatrixF& unit : units) {
      store->add_host(unit);
      unit = MatrixF();  // host memory goes as the device copy grows
    }
    return store;
  }
  void send_units(const ModelConfig& config, const UnitStore& units, Communicator& world,
                  int dest) const override {
    const auto* device_units = dynamic_cast<const cuda::DeviceUnits*>(&units);
    require(device_units != nullptr && device_units->cols() == config.hidden_size,
            "CUDA backend: boundary units stored by another backend or model");
    cuda::send_device_units(*device_units, world, dest);
  }
  std::unique_ptr<UnitStore> receive_units(const ModelConfig& config, Communicator& world,
                                           int source) const override {
    return cuda::receive_device_units(device_, cuda::activation_dtype_for(config.torch_dtype),
                                      config.hidden_size, world, source);
  }
  std::unique_ptr<ResidentLayer> load_layer(const ModelConfig& config, const LayerWeights& weights,
                                            const RotaryTable& rope) const override {
    return std::make_unique<cuda::CudaLayer>(
        device_, config, weights, rope, cuda::activation_dtype_for(config.torch_dtype), &solver_);
  }
  std::unique_ptr<QuantizedModule> gather_tiles(std::unique_ptr<SolvedTiles> mine,
                                                const TileDeal& deal,
                                                Communicator& comm) const override {
    return cuda::gather_device_tiles(device_, std::move(mine), deal, comm);
  }

 private:
  const int device_;
  cuda::CudaSolver solver_;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int device) {
  const int count = cuda_device_count();
  require(count > 0, "CUDA backend: no CUDA device is visible (no driver or no GPU)");
  require(device >= 0 && device < count, "CUDA backend: device ", device, " requested but only ",
          count, " visible");
  return std::make_unique<CudaBackend>(device);
}

}  // namespace qshard
