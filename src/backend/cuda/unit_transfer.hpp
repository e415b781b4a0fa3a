#pragma once
// --layer_groups' boundary activations between the GPUs of two groups: the device units in their
// activation dtype, with NCCL send/receive when the world communicator is an NcclCommunicator,
// else through two pinned host buffers and host messages (a copy to or from the device overlaps
// the message of the unit before).
#include <memory>

#include "cuda_layer.hpp"
#include "qshard/comm/communicator.hpp"

namespace qshard::cuda {

void send_device_units(const DeviceUnits& units, Communicator& world, int dest);
std::unique_ptr<DeviceUnits> receive_device_units(int device, DType activation, std::int64_t cols,
                                                  Communicator& world, int source);

}  // namespace qshard::cuda
