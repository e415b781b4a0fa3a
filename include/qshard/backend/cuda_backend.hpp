#pragma once
// The CUDA backend (built when nvcc is found: QSHARD_WITH_CUDA).
#include <memory>

#include "qshard/backend/backend.hpp"

namespace qshard {

// Number of visible CUDA devices; 0 when there is no driver or no GPU (never throws).
int cuda_device_count();
// The backend on GPU `device` of this node.
std::unique_ptr<Backend> make_cuda_backend(int device);
// NCCL among the ranks of `host`, one GPU each (GPU `device` of this node). Collective.
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& host, int device);

}  // namespace qshard
