// Communicator's defaults for what only some communicators offer.
#include "qshard/comm/communicator.hpp"

namespace qshard {

void Communicator::send(std::span<const std::byte>, int dest) {
  throw Error(str("this communicator has no point-to-point messages (a send to rank ", dest, ")"));
}

std::vector<std::byte> Communicator::receive(int source) {
  throw Error(
      str("this communicator has no point-to-point messages (a receive from rank ", source, ")"));
}

}  // namespace qshard
