#pragma once
// Two ranks of a tile exchange in one process: rank 0 talks to a scripted rank 1 whose messages
// the test computed beforehand (rank 1's solved tiles on a layer of its own), so a split solve can
// be compared with a one-rank solve without MPI.
#include <cstdlib>
#include <deque>
#include <vector>

#include "qshard/backend/backend.hpp"
#include "qshard/backend/host_tiles.hpp"
#include "qshard/quant/quantized_weight_bytes.hpp"

namespace qshard::test {

class ScriptedPeerCommunicator final : public Communicator {
 public:
  // Rank 1's all_gather contributions, in call order.
  explicit ScriptedPeerCommunicator(std::deque<std::vector<std::byte>> peer)
      : peer_(std::move(peer)) {}
  int rank() const override { return 0; }
  int size() const override { return 2; }
  void all_reduce_sum(std::span<std::int64_t>) override { std::abort(); }
  void all_reduce_sum(std::span<double>) override { std::abort(); }
  void all_reduce_max(std::span<double>) override { std::abort(); }
  std::vector<std::byte> all_gather(std::span<const std::byte> local) override {
    std::vector<std::byte> out(local.begin(), local.end());
    out.insert(out.end(), peer_.front().begin(), peer_.front().end());
    peer_.pop_front();
    return out;
  }
  void broadcast(std::span<std::byte>, int) override { std::abort(); }
  void barrier() override {}
  [[noreturn]] void abort(int exit_code) override { std::exit(exit_code); }
  bool any(bool failed) override { return failed; }
  std::size_t pending() const { return peer_.size(); }

 private:
  std::deque<std::vector<std::byte>> peer_;
};

// What rank 1 sends in Backend::gather_tiles through the host communicator: its rows, then its
// per-tile objectives [gptq..., rtn...].
inline std::deque<std::vector<std::byte>> peer_messages(const SolvedTiles& rank1) {
  std::vector<std::byte> rows;
  write_quantized(rank1.to_host(), rows);
  std::vector<double> values(rank1.objective_gptq);
  values.insert(values.end(), rank1.objective_rtn.begin(), rank1.objective_rtn.end());
  const auto bytes = std::as_bytes(std::span(values));
  return {rows, std::vector<std::byte>(bytes.begin(), bytes.end())};
}

// Tiles of `tile_rows` rows over `rows`, owners alternating from rank 0 (or all rank 0).
inline TileDeal make_deal(std::int64_t rows, std::int64_t tile_rows, int ranks) {
  TileDeal deal;
  for (std::int64_t b = 0, t = 0; b < rows; b += tile_rows, ++t)
    deal.push_back({b, std::min(rows, b + tile_rows), static_cast<int>(t % ranks)});
  return deal;
}

}  // namespace qshard::test
