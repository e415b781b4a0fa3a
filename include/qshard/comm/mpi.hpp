#pragma once
// MPI for qshard: the session (init/finalize) as an RAII object and the host-buffer communicator.
#include <mpi.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "qshard/comm/communicator.hpp"

namespace qshard {

// Initialises MPI (thread level FUNNELED) for its lifetime; finalises on destruction.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
};

class MpiCommunicator final : public Communicator {
 public:
  // Duplicates `comm` (MPI_COMM_WORLD by default) so qshard's messages never mix with others'.
  explicit MpiCommunicator(MPI_Comm comm = MPI_COMM_WORLD);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void all_reduce_sum(std::span<std::int64_t> values) override;
  void reduce_sum(std::span<std::int64_t> values, int root) override;
  void all_reduce_sum(std::span<double> values) override;
  void all_reduce_max(std::span<double> values) override;
  std::vector<std::byte> all_gather(std::span<const std::byte> local) override;
  void broadcast(std::span<std::byte> bytes, int root) override;
  void barrier() override;
  [[noreturn]] void abort(int exit_code) override;
  bool any(bool failed) override;
  void send(std::span<const std::byte> bytes, int dest) override;
  std::vector<std::byte> receive(int source) override;
  void receive_into(std::span<std::byte> bytes, int source) override;

  // Collective: the ranks with the same `color`, ordered as here (MPI_Comm_split).
  std::unique_ptr<MpiCommunicator> split(int color) const;

  // The rank of this process among the ranks of its node (MPI shared-memory split).
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }
  MPI_Comm handle() const { return comm_; }

 private:
  void receive_body(std::span<std::byte> bytes, int source);  // after the size message

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
};

// One rank, no MPI: for tools and tests that run in a single process. Messages to itself (rank 0)
// queue in order until received.
class SelfCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void all_reduce_sum(std::span<std::int64_t>) override {}
  void all_reduce_sum(std::span<double>) override {}
  void all_reduce_max(std::span<double>) override {}
  std::vector<std::byte> all_gather(std::span<const std::byte> local) override {
    return {local.begin(), local.end()};
  }
  void broadcast(std::span<std::byte>, int) override {}
  void barrier() override {}
  [[noreturn]] void abort(int exit_code) override;
  bool any(bool failed) override { return failed; }
  void send(std::span<const std::byte> bytes, int dest) override;
  std::vector<std::byte> receive(int source) override;

  // The messages sent and not yet received, oldest first.
  const std::deque<std::vector<std::byte>>& queued() const { return queued_; }

 private:
  std::deque<std::vector<std::byte>> queued_;
};

// The node-local rank from the launcher's environment (SLURM_LOCALID, OMPI_COMM_WORLD_LOCAL_RANK,
// MPI_LOCALRANKID), or -1 when none is set.
int launcher_local_rank();

}  // namespace qshard
