#pragma once
// The tile interfaces of backend.hpp on host memory: the CPU backend's, and the CUDA backend's
// exchange when it goes through the host communicator (--collectives mpi).
#include <cstddef>
#include <span>
#include <vector>

#include "qshard/backend/backend.hpp"

namespace qshard {

// The indices in `deal` of the tiles `rank` owns, in deal order.
std::vector<std::size_t> tiles_of(const TileDeal& deal, int rank);

class HostSolvedTiles final : public SolvedTiles {
 public:
  explicit HostSolvedTiles(QuantizedWeight rows) : rows_(std::move(rows)) {}
  QuantizedWeight to_host() const override { return rows_; }
  const QuantizedWeight& rows() const { return rows_; }

 private:
  QuantizedWeight rows_;
};

class HostQuantizedModule final : public QuantizedModule {
 public:
  explicit HostQuantizedModule(QuantizedWeight weight) : weight_(std::move(weight)) {}
  QuantizedWeight to_host() const override { return weight_; }
  const QuantizedWeight& weight() const { return weight_; }

 private:
  QuantizedWeight weight_;
};

// Collective: every rank passes its solved rows (its tiles of `deal` stacked in deal order, sent
// as quant/quantized_weight_bytes.hpp's message); every rank receives the whole module in row
// order.
QuantizedWeight all_gather_tiles(const QuantizedWeight& mine, const TileDeal& deal,
                                 Communicator& comm);

// Collective: the per-tile objectives of every rank's `mine`, summed over all tiles of `deal` in
// deal order into `module` (the same sums on every rank, whatever the rank count).
void sum_tile_objectives(const SolvedTiles& mine, const TileDeal& deal, Communicator& comm,
                         QuantizedModule& module);

}  // namespace qshard
