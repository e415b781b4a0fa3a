// NCCL collectives on device buffers beside a host communicator.
#include "nccl_communicator.hpp"

#include "qshard/backend/cuda_backend.hpp"

#include <unistd.h>

#include <array>
#include <cstdlib>
#include <cstring>

namespace qshard::cuda {
namespace {

// What each rank tells the others about the GPU it picked.
struct DeviceRecord {
  std::array<char, 256> host{};
  std::array<char, 32> pci_bus{};
  std::int32_t device = 0;
};

}  // namespace

void check(ncclResult_t status, const char* call) {
  if (status == ncclSuccess) return;
  throw Error(
      str(call, " failed: ", ncclGetErrorString(status), " (", static_cast<int>(status), ")"));
}

NcclCommunicator::NcclCommunicator(Communicator& host, int device) : host_(host), device_(device) {
  const DeviceGuard guard(device);

  DeviceRecord mine;
  if (gethostname(mine.host.data(), mine.host.size() - 1) != 0)
    std::strncpy(mine.host.data(), "unknown-host", mine.host.size() - 1);
  QSHARD_CUDA_CHECK(
      cudaDeviceGetPCIBusId(mine.pci_bus.data(), static_cast<int>(mine.pci_bus.size()), device));
  mine.device = device;
  const std::vector<std::byte> all = host_.all_gather(
      std::span<const std::byte>(reinterpret_cast<const std::byte*>(&mine), sizeof(mine)));
  require(all.size() == sizeof(DeviceRecord) * static_cast<std::size_t>(host_.size()),
          "NcclCommunicator: device exchange returned ", all.size(), " bytes");
  std::vector<DeviceRecord> records(static_cast<std::size_t>(host_.size()));
  std::memcpy(records.data(), all.data(), all.size());
  for (std::size_t a = 0; a < records.size(); ++a)
    for (std::size_t b = a + 1; b < records.size(); ++b)
      if (std::strcmp(records[a].host.data(), records[b].host.data()) == 0 &&
          std::strcmp(records[a].pci_bus.data(), records[b].pci_bus.data()) == 0)
        throw CollectiveError(str("ranks ", a, " and ", b, " on host ", records[a].host.data(),
                                  " both use the GPU at PCI ", records[a].pci_bus.data(),
                                  " (device ", records[a].device, " and ", records[b].device,
                                  "): launch one rank per GPU, each with its own local rank"));

  ncclUniqueId id{};
  bool failed = false;
  std::string reason;
  if (host_.is_root()) {
    const ncclResult_t status = ncclGetUniqueId(&id);
    failed = status != ncclSuccess;
    if (failed) reason = ncclGetErrorString(status);
  }
  if (host_.any(failed))
    throw CollectiveError(
        str("ncclGetUniqueId failed on rank 0", reason.empty() ? "" : ": ", reason));
  host_.broadcast(std::span<std::byte>(reinterpret_cast<std::byte*>(&id), sizeof(id)), 0);
  QSHARD_CUDA_CHECK(ncclCommInitRank(&comm_, host_.size(), id, host_.rank()));
}

NcclCommunicator::~NcclCommunicator() {
  if (comm_ == nullptr) return;
  int previous = 0;
  const bool switched = cudaGetDevice(&previous) == cudaSuccess && previous != device_ &&
                        cudaSetDevice(device_) == cudaSuccess;
  (void)ncclCommDestroy(comm_);
  if (switched) (void)cudaSetDevice(previous);
}

void NcclCommunicator::abort(int exit_code) {
  if (comm_ != nullptr) (void)ncclCommAbort(comm_);
  comm_ = nullptr;
  host_.abort(exit_code);
  std::_Exit(exit_code);  // not reached: the host communicator's abort does not return
}

void NcclCommunicator::all_reduce_sum_device(std::int64_t* values, std::size_t count,
                                             cudaStream_t stream) {
  const DeviceGuard guard(device_);
  QSHARD_CUDA_CHECK(ncclAllReduce(values, values, count, ncclInt64, ncclSum, comm_, stream));
}

void NcclCommunicator::all_reduce_sum_device(double* values, std::size_t count,
                                             cudaStream_t stream) {
  const DeviceGuard guard(device_);
  QSHARD_CUDA_CHECK(ncclAllReduce(values, values, count, ncclFloat64, ncclSum, comm_, stream));
}

void NcclCommunicator::all_gather_device(const void* send, void* recv, std::size_t bytes_per_rank,
                                         cudaStream_t stream) {
  const DeviceGuard guard(device_);
  QSHARD_CUDA_CHECK(ncclAllGather(send, recv, bytes_per_rank, ncclUint8, comm_, stream));
}

void NcclCommunicator::send_device(const void* data, std::size_t bytes, int peer,
                                   cudaStream_t stream) {
  const DeviceGuard guard(device_);
  QSHARD_CUDA_CHECK(ncclSend(data, bytes, ncclUint8, peer, comm_, stream));
}

void NcclCommunicator::receive_device(void* data, std::size_t bytes, int peer,
                                      cudaStream_t stream) {
  const DeviceGuard guard(device_);
  QSHARD_CUDA_CHECK(ncclRecv(data, bytes, ncclUint8, peer, comm_, stream));
}

void NcclCommunicator::check_async() const {
  ncclResult_t async = ncclSuccess;
  QSHARD_CUDA_CHECK(ncclCommGetAsyncError(comm_, &async));
  check(async, "an earlier NCCL collective (reported by ncclCommGetAsyncError)");
}

}  // namespace qshard::cuda

namespace qshard {

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& host, int device) {
  return std::make_unique<cuda::NcclCommunicator>(host, device);
}

}  // namespace qshard
