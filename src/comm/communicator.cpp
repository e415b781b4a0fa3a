// Communicator's defaults for what only some communicators offer.
#include "qshard/comm/communicator.hpp"

#include <cstring>

namespace qshard {

void Communicator::send(std::span<const std::byte>, int dest) {
  throw Error(str("this communicator has no point-to-point messages (a send to rank ", dest, ")"));
}

std::vector<std::byte> Communicator::receive(int source) {
  throw Error(
      str("this communicator has no point-to-point messages (a receive from rank ", source, ")"));
}

void Communicator::receive_into(std::span<std::byte> bytes, int source) {
  const std::vector<std::byte> message = receive(source);
  require(message.size() == bytes.size(), "a message of ", message.size(), " bytes from rank ",
          source, " where ", bytes.size(), " were expected");
  if (!bytes.empty()) std::memcpy(bytes.data(), message.data(), bytes.size());
}

}  // namespace qshard
