#pragma once
// A Communicator that adds NCCL collectives on device buffers to a host communicator (MPI): the
// NCCL id travels through the host communicator's broadcast, host collectives are forwarded to it.
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstddef>
#include <cstdint>

#include "device.hpp"
#include "qshard/comm/communicator.hpp"

namespace qshard::cuda {

void check(ncclResult_t status, const char* call);  // for QSHARD_CUDA_CHECK

class NcclCommunicator final : public Communicator {
 public:
  // Collective: every rank of `host` constructs one with its GPU `device`. Throws CollectiveError
  // on every rank when two ranks of one host picked the same GPU (compared by PCI bus id).
  // `host` must outlive this object.
  NcclCommunicator(Communicator& host, int device);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return host_.rank(); }
  int size() const override { return host_.size(); }
  void all_reduce_sum(std::span<std::int64_t> values) override { host_.all_reduce_sum(values); }
  void all_reduce_sum(std::span<double> values) override { host_.all_reduce_sum(values); }
  void all_reduce_max(std::span<double> values) override { host_.all_reduce_max(values); }
  std::vector<std::byte> all_gather(std::span<const std::byte> local) override {
    return host_.all_gather(local);
  }
  void broadcast(std::span<std::byte> bytes, int root) override { host_.broadcast(bytes, root); }
  void barrier() override { host_.barrier(); }
  [[noreturn]] void abort(int exit_code) override;
  bool any(bool failed) override { return host_.any(failed); }
  void send(std::span<const std::byte> bytes, int dest) override { host_.send(bytes, dest); }
  std::vector<std::byte> receive(int source) override { return host_.receive(source); }
  void receive_into(std::span<std::byte> bytes, int source) override {
    host_.receive_into(bytes, source);
  }

  // Device collectives, enqueued on `stream` (of this communicator's device); the caller
  // synchronises the stream before using the result, then may call check_async().
  void all_reduce_sum_device(std::int64_t* values, std::size_t count, cudaStream_t stream);
  void all_reduce_sum_device(double* values, std::size_t count, cudaStream_t stream);
  // recv holds size() * bytes_per_rank bytes, rank order.
  void all_gather_device(const void* send, void* recv, std::size_t bytes_per_rank,
                         cudaStream_t stream);
  // Point to point on device buffers (--layer_groups' boundary activations): `bytes` bytes to or
  // from rank `peer`, matched in the order posted; enqueued on `stream` like the collectives.
  void send_device(const void* data, std::size_t bytes, int peer, cudaStream_t stream);
  void receive_device(void* data, std::size_t bytes, int peer, cudaStream_t stream);
  // Throws when NCCL reported an asynchronous error (a peer failed, a network error).
  void check_async() const;

  int device() const { return device_; }
  ncclComm_t handle() const { return comm_; }
  Communicator& host() const { return host_; }

 private:
  Communicator& host_;
  int device_;
  ncclComm_t comm_ = nullptr;
};

}  // namespace qshard::cuda
