#pragma once
// A Communicator whose blocking collectives are watched (--collective_timeout): each arms a
// Watchdog with the job's phase ("layer 3") and the stage the collective belongs to, so a rank
// that waits too long for a stopped or hung rank ends the job naming both. Within a layer the
// integer all-reduce is the reduce stage (the Hessians) and the all-gather the exchange stage (the
// quantized tiles; pipeline/layer_quantizer.cpp). For host collectives: the CUDA backend's NCCL
// communicator is not wrapped (NCCL has its own timeout).
#include <string>
#include <string_view>

#include "qshard/comm/communicator.hpp"
#include "qshard/core/watchdog.hpp"

namespace qshard {

class WatchedCommunicator final : public Communicator {
 public:
  WatchedCommunicator(Communicator& inner, Watchdog& watchdog);
  // What the job is doing outside the layers: "setup", "checkpoint", ...
  void set_phase(std::string phase) {
    phase_ = std::move(phase);
    in_layer_ = false;
  }
  // Quantizing `layer`: collectives name the layer's stage.
  void set_layer(std::int64_t layer) {
    phase_ = str("layer ", layer);
    in_layer_ = true;
  }

  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
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

 private:
  // "PHASE: `in_layer`" within a layer, "PHASE: `outside`" else.
  Watchdog::Wait watch(std::string_view in_layer, std::string_view outside);

  Communicator& inner_;
  Watchdog& watchdog_;
  std::string phase_ = "setup";
  bool in_layer_ = false;
};

}  // namespace qshard
