// throw_if_any_failed: one agreed error for every rank, naming the rank that failed first.
#include <cstdint>
#include <cstring>

#include "qshard/comm/communicator.hpp"

namespace qshard {

void throw_if_any_failed(Communicator& comm, const std::string& local_error) {
  if (!comm.any(!local_error.empty())) return;
  // Each rank's message framed by its length, concatenated in rank order by all_gather.
  std::vector<std::byte> local(sizeof(std::uint64_t) + local_error.size());
  const std::uint64_t length = local_error.size();
  std::memcpy(local.data(), &length, sizeof length);
  std::memcpy(local.data() + sizeof length, local_error.data(), local_error.size());
  const std::vector<std::byte> all = comm.all_gather(local);
  std::size_t at = 0;
  for (int rank = 0; rank < comm.size() && at + sizeof length <= all.size(); ++rank) {
    std::uint64_t n = 0;
    std::memcpy(&n, all.data() + at, sizeof n);
    at += sizeof n;
    if (n > 0 && at + n <= all.size()) {
      const std::string message(reinterpret_cast<const char*>(all.data() + at), n);
      throw CollectiveError(comm.size() > 1 ? str("rank ", rank, ": ", message) : message);
    }
    at += n;
  }
  throw CollectiveError("a rank failed without a message");
}

}  // namespace qshard
