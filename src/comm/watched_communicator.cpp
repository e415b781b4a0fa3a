#include "qshard/comm/watched_communicator.hpp"

#include <cstdlib>

namespace qshard {

WatchedCommunicator::WatchedCommunicator(Communicator& inner, Watchdog& watchdog)
    : inner_(inner), watchdog_(watchdog) {}

Watchdog::Wait WatchedCommunicator::watch(std::string_view in_layer, std::string_view outside) {
  return watchdog_.wait(str(phase_, ": ", in_layer_ ? in_layer : outside));
}

void WatchedCommunicator::all_reduce_sum(std::span<std::int64_t> values) {
  const auto wait =
      watch("the reduce stage (integer all-reduce of the Hessians)", "an integer all-reduce");
  inner_.all_reduce_sum(values);
}

void WatchedCommunicator::reduce_sum(std::span<std::int64_t> values, int root) {
  const auto wait =
      watch("the reduce stage (integer reduce of the experts' Hessians to their owners)",
            "an integer reduce");
  inner_.reduce_sum(values, root);
}

void WatchedCommunicator::all_reduce_sum(std::span<double> values) {
  const auto wait = watch("an all-reduce", "an all-reduce");
  inner_.all_reduce_sum(values);
}

void WatchedCommunicator::all_reduce_max(std::span<double> values) {
  const auto wait = watch("an all-reduce", "an all-reduce");
  inner_.all_reduce_max(values);
}

std::vector<std::byte> WatchedCommunicator::all_gather(std::span<const std::byte> local) {
  const auto wait =
      watch("the exchange stage (all-gather of the quantized tiles)", "an all-gather");
  return inner_.all_gather(local);
}

void WatchedCommunicator::broadcast(std::span<std::byte> bytes, int root) {
  const auto wait = watch("a broadcast", "a broadcast");
  inner_.broadcast(bytes, root);
}

void WatchedCommunicator::barrier() {
  const auto wait = watch("a barrier", "a barrier");
  inner_.barrier();
}

void WatchedCommunicator::abort(int exit_code) {
  inner_.abort(exit_code);
  std::_Exit(exit_code);  // not reached
}

void WatchedCommunicator::send(std::span<const std::byte> bytes, int dest) {
  const auto wait = watch("a send to another rank", "a send to another rank");
  inner_.send(bytes, dest);
}

std::vector<std::byte> WatchedCommunicator::receive(int source) {
  const auto wait = watch("a receive from another rank", "a receive from another rank");
  return inner_.receive(source);
}

void WatchedCommunicator::receive_into(std::span<std::byte> bytes, int source) {
  const auto wait = watch("a receive from another rank", "a receive from another rank");
  inner_.receive_into(bytes, source);
}

bool WatchedCommunicator::any(bool failed) {
  const auto wait = watch("an agreement of the ranks", "an agreement of the ranks");
  return inner_.any(failed);
}

}  // namespace qshard
