#include "qshard/pipeline/backend_factory.hpp"

#include "qshard/backend/cpu_backend.hpp"
#include "qshard/core/error.hpp"
#if defined(QSHARD_WITH_CUDA)
#include "qshard/backend/cuda_backend.hpp"
#endif

namespace qshard {

std::unique_ptr<Backend> make_backend(const std::string& kind, int local_rank, bool share_gpus) {
  require(kind == "cpu" || kind == "cuda" || kind == "auto", "unknown backend '", kind,
          "' (expected cpu, cuda or auto)");
#if defined(QSHARD_WITH_CUDA)
  const int devices = cuda_device_count();
  if (kind == "cuda" || (kind == "auto" && devices > 0)) {
    require(devices > 0, "--backend cuda: no CUDA device is visible");
    if (share_gpus) return make_cuda_backend(local_rank < 0 ? 0 : local_rank % devices);
    require(local_rank < devices, "rank with node-local index ", local_rank, " has no GPU: only ",
            devices, " visible (launch one rank per GPU)");
    return make_cuda_backend(local_rank < 0 ? 0 : local_rank);
  }
#else
  (void)local_rank;
  (void)share_gpus;
  require(kind != "cuda", "--backend cuda: this build has no CUDA backend (nvcc was not found)");
#endif
  return make_cpu_backend();
}

EvaluationBackend make_evaluation_backend(const std::string& kind) {
  EvaluationBackend e;
  if (kind == "cpu") return e;
  e.backend = make_backend(kind, 0);
  if (e.backend->name() == "cpu") return e;
  const Backend* backend = e.backend.get();
  e.runner = [backend](const ModelConfig& c, const LayerWeights& w, const RotaryTable& rope,
                       const MatrixF& hidden, std::int64_t seq_len) {
    return backend->forward_layer(c, w, rope, hidden, seq_len);
  };
  return e;
}

std::unique_ptr<Communicator> make_device_communicator(Communicator& host, const Backend& backend,
                                                       int local_rank) {
#if defined(QSHARD_WITH_CUDA)
  if (backend.name() == "cuda")
    return make_nccl_communicator(host, local_rank < 0 ? 0 : local_rank);
#else
  (void)host;
  (void)local_rank;
#endif
  (void)backend;
  return nullptr;
}

}  // namespace qshard
