// throw_if_any_failed: one agreed error for every rank, naming the rank that failed first.
#include <algorithm>
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
  std::vector<std::string> messages;
  for (std::size_t at = 0; at + sizeof length <= all.size();) {
    std::uint64_t n = 0;
    std::memcpy(&n, all.data() + at, sizeof n);
    at += sizeof n;
    require(at + n <= all.size(), "throw_if_any_failed: a truncated message from rank ",
            messages.size());
    messages.emplace_back(reinterpret_cast<const char*>(all.data() + at), n);
    at += n;
  }
  const bool everywhere_alike = std::all_of(messages.begin(), messages.end(),
                                            [&](const std::string& m) { return m == messages[0]; });
  if (everywhere_alike) throw CollectiveError(messages.at(0));
  for (std::size_t rank = 0; rank < messages.size(); ++rank)
    if (!messages[rank].empty()) throw CollectiveError(str("rank ", rank, ": ", messages[rank]));
  throw CollectiveError("a rank failed without a message");
}

}  // namespace qshard
