// Boundary units between layer groups' GPUs: NCCL send/receive, or pinned host staging.
#include "unit_transfer.hpp"

#include <algorithm>
#include <array>

#include "forward_kernels.hpp"
#include "nccl_communicator.hpp"
#include "qshard/backend/unit_messages.hpp"

namespace qshard::cuda {
namespace {

std::int64_t largest_unit_bytes(const UnitsHead& head) {
  std::int64_t most = 0;
  for (std::size_t i = 0; i < head.rows.size(); ++i) most = std::max(most, head.unit_bytes(i));
  return most;
}

// Two page-locked buffers used in turn, each with the event of its last device copy.
struct PinnedPair {
  explicit PinnedPair(std::int64_t bytes)
      : buffers{PinnedBuffer<std::byte>(static_cast<std::size_t>(bytes)),
                PinnedBuffer<std::byte>(static_cast<std::size_t>(bytes))} {}
  std::array<PinnedBuffer<std::byte>, 2> buffers;
  std::array<Event, 2> copied;
};

}  // namespace

void send_device_units(const DeviceUnits& units, Communicator& world, int dest) {
  const DeviceGuard guard(units.device());
  UnitsHead head{
      units.cols(), static_cast<std::int64_t>(kernels::activation_size(units.activation())), {}};
  for (std::size_t i = 0; i < units.size(); ++i) head.rows.push_back(units.rows(i));
  send_units_head(world, head, dest);
  const Stream stream;
  if (auto* nccl = dynamic_cast<NcclCommunicator*>(&world)) {
    for (std::size_t i = 0; i < units.size(); ++i)
      nccl->send_device(units.data(i), static_cast<std::size_t>(head.unit_bytes(i)), dest,
                        stream.get());
    stream.synchronize();
    nccl->check_async();
    return;
  }
  // Unit i + 1 comes down while unit i is on the wire; a buffer is reused once its send returned.
  PinnedPair pinned(largest_unit_bytes(head));
  const auto download = [&](std::size_t i) {
    QSHARD_CUDA_CHECK(cudaMemcpyAsync(pinned.buffers[i % 2].data(), units.data(i),
                                      static_cast<std::size_t>(head.unit_bytes(i)),
                                      cudaMemcpyDeviceToHost, stream.get()));
    pinned.copied[i % 2].record(stream.get());
  };
  if (units.size() > 0) download(0);
  for (std::size_t i = 0; i < units.size(); ++i) {
    if (i + 1 < units.size()) download(i + 1);
    pinned.copied[i % 2].synchronize();
    world.send(std::span<const std::byte>(pinned.buffers[i % 2].data(),
                                          static_cast<std::size_t>(head.unit_bytes(i))),
               dest);
  }
}

std::unique_ptr<DeviceUnits> receive_device_units(int device, DType activation, std::int64_t cols,
                                                  Communicator& world, int source) {
  const DeviceGuard guard(device);
  const UnitsHead head = receive_units_head(
      world, source, cols, static_cast<std::int64_t>(kernels::activation_size(activation)));
  auto units = std::make_unique<DeviceUnits>(device, activation, cols);
  std::vector<DeviceBuffer<std::byte>> buffers;
  for (std::size_t i = 0; i < head.rows.size(); ++i)
    buffers.emplace_back(static_cast<std::size_t>(head.unit_bytes(i)));
  const Stream stream;
  if (auto* nccl = dynamic_cast<NcclCommunicator*>(&world)) {
    for (std::size_t i = 0; i < buffers.size(); ++i)
      nccl->receive_device(buffers[i].data(), buffers[i].bytes(), source, stream.get());
    stream.synchronize();
    nccl->check_async();
  } else {
    // Unit i goes up while unit i + 1 arrives; a buffer is reused once its copy has finished.
    PinnedPair pinned(largest_unit_bytes(head));
    for (std::size_t i = 0; i < buffers.size(); ++i) {
      if (i >= 2) pinned.copied[i % 2].synchronize();
      const std::span<std::byte> staging(pinned.buffers[i % 2].data(), buffers[i].bytes());
      world.receive_into(staging, source);
      QSHARD_CUDA_CHECK(cudaMemcpyAsync(buffers[i].data(), staging.data(), staging.size(),
                                        cudaMemcpyHostToDevice, stream.get()));
      pinned.copied[i % 2].record(stream.get());
    }
    stream.synchronize();
  }
  for (std::size_t i = 0; i < buffers.size(); ++i)
    units->add_device(std::move(buffers[i]), head.rows[i]);
  return units;
}

}  // namespace qshard::cuda
