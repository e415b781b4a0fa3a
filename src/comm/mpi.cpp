#include "qshard/comm/mpi.hpp"

#include <cstdlib>
#include <limits>

#include "qshard/core/error.hpp"

namespace qshard {
namespace {

void check_mpi(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(rc, text, &length);
  throw Error(str(call, " failed: ", std::string(text, static_cast<std::size_t>(length))));
}

int checked_count(std::size_t n, const char* what) {
  require(n <= static_cast<std::size_t>(std::numeric_limits<int>::max()), what, ": ", n,
          " elements exceed one MPI message");
  return static_cast<int>(n);
}

}  // namespace

MpiSession::MpiSession(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    check_mpi(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  }
  // Errors come back as codes and become exceptions (then a collective abort), never a silent hang.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

MpiCommunicator::MpiCommunicator(MPI_Comm comm) {
  check_mpi(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  check_mpi(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
  check_mpi(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
  MPI_Comm node = MPI_COMM_NULL;
  check_mpi(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node),
            "MPI_Comm_split_type");
  MPI_Comm_rank(node, &local_rank_);
  MPI_Comm_size(node, &local_size_);
  MPI_Comm_free(&node);
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

void MpiCommunicator::all_reduce_sum(std::span<std::int64_t> values) {
  // Chunked so arrays beyond 2^31 elements (a 28672^2 Hessian's limbs) work.
  constexpr std::size_t kChunk = std::size_t{1} << 28;
  for (std::size_t offset = 0; offset < values.size(); offset += kChunk) {
    const std::size_t n = std::min(kChunk, values.size() - offset);
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, values.data() + offset, static_cast<int>(n), MPI_INT64_T,
                            MPI_SUM, comm_),
              "MPI_Allreduce(int64 sum)");
  }
}

void MpiCommunicator::reduce_sum(std::span<std::int64_t> values, int root) {
  constexpr std::size_t kChunk = std::size_t{1} << 28;
  for (std::size_t offset = 0; offset < values.size(); offset += kChunk) {
    const std::size_t n = std::min(kChunk, values.size() - offset);
    std::int64_t* data = values.data() + offset;
    check_mpi(MPI_Reduce(rank_ == root ? MPI_IN_PLACE : data, rank_ == root ? data : nullptr,
                         static_cast<int>(n), MPI_INT64_T, MPI_SUM, root, comm_),
              "MPI_Reduce(int64 sum)");
  }
}

void MpiCommunicator::all_reduce_sum(std::span<double> values) {
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, values.data(), checked_count(values.size(), "all_reduce"),
                          MPI_DOUBLE, MPI_SUM, comm_),
            "MPI_Allreduce(double sum)");
}

void MpiCommunicator::all_reduce_max(std::span<double> values) {
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, values.data(), checked_count(values.size(), "all_reduce"),
                          MPI_DOUBLE, MPI_MAX, comm_),
            "MPI_Allreduce(double max)");
}

std::vector<std::byte> MpiCommunicator::all_gather(std::span<const std::byte> local) {
  long long mine = static_cast<long long>(local.size());
  std::vector<long long> sizes(static_cast<std::size_t>(size_));
  check_mpi(MPI_Allgather(&mine, 1, MPI_LONG_LONG, sizes.data(), 1, MPI_LONG_LONG, comm_),
            "MPI_Allgather(sizes)");
  std::vector<std::size_t> offsets(sizes.size() + 1, 0);
  for (std::size_t r = 0; r < sizes.size(); ++r)
    offsets[r + 1] = offsets[r] + static_cast<std::size_t>(sizes[r]);
  std::vector<std::byte> out(offsets.back());
  // Each rank broadcasts its part: no 2 GiB displacement limit, and parts of any size.
  for (int r = 0; r < size_; ++r) {
    std::byte* dst = out.data() + offsets[static_cast<std::size_t>(r)];
    if (r == rank_ && !local.empty()) std::copy(local.begin(), local.end(), dst);
    broadcast({dst, static_cast<std::size_t>(sizes[static_cast<std::size_t>(r)])}, r);
  }
  return out;
}

void MpiCommunicator::broadcast(std::span<std::byte> bytes, int root) {
  constexpr std::size_t kChunk = std::size_t{1} << 30;
  for (std::size_t offset = 0; offset < bytes.size(); offset += kChunk) {
    const std::size_t n = std::min(kChunk, bytes.size() - offset);
    check_mpi(MPI_Bcast(bytes.data() + offset, static_cast<int>(n), MPI_BYTE, root, comm_),
              "MPI_Bcast");
  }
}

void MpiCommunicator::barrier() { check_mpi(MPI_Barrier(comm_), "MPI_Barrier"); }

void MpiCommunicator::abort(int exit_code) {
  MPI_Abort(comm_, exit_code);
  std::_Exit(exit_code);
}

bool MpiCommunicator::any(bool failed) {
  int flag = failed ? 1 : 0;
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, &flag, 1, MPI_INT, MPI_LOR, comm_), "MPI_Allreduce(any)");
  return flag != 0;
}

namespace {
constexpr std::size_t kMessageChunk = std::size_t{1} << 30;  // MPI counts are int
}

void MpiCommunicator::send(std::span<const std::byte> bytes, int dest) {
  long long size = static_cast<long long>(bytes.size());
  check_mpi(MPI_Send(&size, 1, MPI_LONG_LONG, dest, 0, comm_), "MPI_Send(size)");
  for (std::size_t offset = 0; offset < bytes.size(); offset += kMessageChunk) {
    const std::size_t n = std::min(kMessageChunk, bytes.size() - offset);
    check_mpi(MPI_Send(bytes.data() + offset, static_cast<int>(n), MPI_BYTE, dest, 1, comm_),
              "MPI_Send");
  }
}

std::vector<std::byte> MpiCommunicator::receive(int source) {
  long long size = 0;
  check_mpi(MPI_Recv(&size, 1, MPI_LONG_LONG, source, 0, comm_, MPI_STATUS_IGNORE),
            "MPI_Recv(size)");
  std::vector<std::byte> bytes(static_cast<std::size_t>(size));
  receive_body(bytes, source);
  return bytes;
}

void MpiCommunicator::receive_into(std::span<std::byte> bytes, int source) {
  long long size = 0;
  check_mpi(MPI_Recv(&size, 1, MPI_LONG_LONG, source, 0, comm_, MPI_STATUS_IGNORE),
            "MPI_Recv(size)");
  require(static_cast<std::size_t>(size) == bytes.size(), "a message of ", size,
          " bytes from rank ", source, " where ", bytes.size(), " were expected");
  receive_body(bytes, source);
}

void MpiCommunicator::receive_body(std::span<std::byte> bytes, int source) {
  for (std::size_t offset = 0; offset < bytes.size(); offset += kMessageChunk) {
    const std::size_t n = std::min(kMessageChunk, bytes.size() - offset);
    check_mpi(MPI_Recv(bytes.data() + offset, static_cast<int>(n), MPI_BYTE, source, 1, comm_,
                       MPI_STATUS_IGNORE),
              "MPI_Recv");
  }
}

std::unique_ptr<MpiCommunicator> MpiCommunicator::split(int color) const {
  MPI_Comm part = MPI_COMM_NULL;
  check_mpi(MPI_Comm_split(comm_, color, rank_, &part), "MPI_Comm_split");
  auto out = std::make_unique<MpiCommunicator>(part);  // duplicates it
  MPI_Comm_free(&part);
  return out;
}

void SelfCommunicator::abort(int exit_code) { std::_Exit(exit_code); }

void SelfCommunicator::send(std::span<const std::byte> bytes, int dest) {
  require(dest == 0, "a single-process job has no rank ", dest, " to send to");
  queued_.emplace_back(bytes.begin(), bytes.end());
}

std::vector<std::byte> SelfCommunicator::receive(int source) {
  require(source == 0, "a single-process job has no rank ", source, " to receive from");
  require(!queued_.empty(),
          "a receive with no message sent (a single-process job would wait forever)");
  std::vector<std::byte> front = std::move(queued_.front());
  queued_.pop_front();
  return front;
}

int launcher_local_rank() {
  for (const char* name :
       {"SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "PMI_LOCAL_RANK"}) {
    if (const char* value = std::getenv(name); value != nullptr && *value != '\0') {
      return std::atoi(value);
    }
  }
  return -1;
}

}  // namespace qshard
