#pragma once
// Collective operations between the ranks of a job. The MPI implementation moves host buffers;
// the CUDA backend adds NCCL for device buffers (backend/cuda). A single-process job uses the
// same interface with one rank.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "qshard/core/error.hpp"

namespace qshard {

// An error that every rank raises together (bad options, a missing model, a failure agreed with
// Communicator::any): each rank can simply exit, as no rank is left waiting in a collective.
class CollectiveError : public Error {
 public:
  using Error::Error;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  bool is_root() const { return rank() == 0; }

  // Element-wise sum over all ranks, in place. Integer sums are exact, hence order-independent.
  virtual void all_reduce_sum(std::span<std::int64_t> values) = 0;
  virtual void all_reduce_sum(std::span<double> values) = 0;  // for timings and statistics only
  // Element-wise sum over all ranks into `root`'s `values` (exact, as above); the other ranks'
  // values are unspecified afterwards. By default an all-reduce.
  virtual void reduce_sum(std::span<std::int64_t> values, int root) {
    (void)root;
    all_reduce_sum(values);
  }
  virtual void all_reduce_max(std::span<double> values) = 0;
  // Every rank contributes `local` (any length); all ranks receive the concatenation in rank order.
  virtual std::vector<std::byte> all_gather(std::span<const std::byte> local) = 0;
  virtual void broadcast(std::span<std::byte> bytes, int root) = 0;
  virtual void barrier() = 0;
  // Ends the whole job (every rank) after an error on this rank, so no rank waits forever.
  [[noreturn]] virtual void abort(int exit_code) = 0;
  // Whether any rank reports `failed`; every rank must call it (used to fail collectively).
  virtual bool any(bool failed) = 0;
  // Point to point (--layer_groups' boundary activations): `bytes` to rank `dest`, received whole
  // by receive(source) there, in send order. Communicators without it refuse by name.
  virtual void send(std::span<const std::byte> bytes, int dest);
  virtual std::vector<std::byte> receive(int source);
  // The same into `bytes` (a staging buffer the caller owns), which must be exactly the message's
  // size (an error names both). By default through receive().
  virtual void receive_into(std::span<std::byte> bytes, int source);
};

// Every rank calls it with its own error message ("" when it did well). When any rank failed, every
// rank throws the same CollectiveError: the message when all ranks failed alike, else the lowest
// failing rank's, prefixed with "rank R: ", so rank 0 prints an error that only another rank saw
// (a file that only another host could not read, for instance).
void throw_if_any_failed(Communicator& comm, const std::string& local_error);

// All ranks of MPI_COMM_WORLD (comm/mpi.hpp, where MpiSession initialises MPI).
class MpiCommunicator;

}  // namespace qshard
