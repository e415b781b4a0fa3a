#pragma once
// Picks the backend and the device communicator of a job from its options (defined in
// pipeline/backend_factory.cpp, the one place that knows every backend).
#include <memory>
#include <string>

#include "qshard/backend/backend.hpp"
#include "qshard/comm/communicator.hpp"
#include "qshard/model/causal_lm.hpp"

namespace qshard {

// "cpu", "cuda" or "auto" (cuda when this build has the CUDA backend and a GPU is visible).
// `local_rank` picks the GPU of this rank on its node (one rank per GPU; with `share_gpus`, GPU
// local_rank modulo the GPU count). Throws for "cuda" without a GPU.
std::unique_ptr<Backend> make_backend(const std::string& kind, int local_rank,
                                      bool share_gpus = false);

// The communicator for a job on `backend`: with the CUDA backend, NCCL for device buffers (one rank
// per GPU, GPU `local_rank`; host collectives still go through `host`); otherwise none (nullptr:
// use `host`). Collective: every rank calls it.
std::unique_ptr<Communicator> make_device_communicator(Communicator& host, const Backend& backend,
                                                       int local_rank);

// Where an evaluation (qshard-eval, the sweep's scoring) runs its decoder layers: `kind` as in
// make_backend. On the CPU backend the runner is empty, since the CPU's layers are the
// evaluation's own forward; on another backend it forwards each layer there (the runner refers to
// `backend`, which lives as long as this object).
struct EvaluationBackend {
  std::unique_ptr<Backend> backend;
  LayerRunner runner;
};
EvaluationBackend make_evaluation_backend(const std::string& kind);

}  // namespace qshard
