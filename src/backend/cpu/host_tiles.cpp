#include "qshard/backend/host_tiles.hpp"

#include <cstring>

#include "qshard/core/error.hpp"
#include "qshard/quant/quantized_weight_bytes.hpp"

namespace qshard {

std::vector<std::size_t> tiles_of(const TileDeal& deal, int rank) {
  std::vector<std::size_t> mine;
  for (std::size_t t = 0; t < deal.size(); ++t)
    if (deal[t].owner == rank) mine.push_back(t);
  return mine;
}

QuantizedWeight all_gather_tiles(const QuantizedWeight& mine, const TileDeal& deal,
                                 Communicator& comm) {
  std::vector<std::byte> message;
  write_quantized(mine, message);
  const std::vector<std::byte> all = comm.all_gather(message);
  // Rank r's rows are its tiles in deal order: place them tile by tile.
  std::vector<QuantizedWeight> tiles(deal.size());
  std::size_t offset = 0;
  for (int r = 0; r < comm.size(); ++r) {
    const QuantizedWeight rows = read_quantized(all, offset);
    std::int64_t row = 0;
    for (const std::size_t t : tiles_of(deal, r)) {
      const std::int64_t n = deal[t].end - deal[t].begin;
      tiles[t] = rows.slice_rows(row, row + n);
      row += n;
    }
    require(row == rows.rows(), "tile exchange: rank ", r, " sent ", rows.rows(),
            " rows for tiles of ", row);
  }
  require(offset == all.size(), "tile exchange: ", all.size() - offset, " bytes left over");
  return stack_rows(tiles);
}

void sum_tile_objectives(const SolvedTiles& mine, const TileDeal& deal, Communicator& comm,
                         QuantizedModule& module) {
  const std::vector<std::size_t> own = tiles_of(deal, comm.rank());
  require(mine.objective_gptq.size() == own.size() && mine.objective_rtn.size() == own.size(),
          "tile exchange: objectives of ", mine.objective_gptq.size(), " tiles for ", own.size());
  // Every rank's [gptq..., rtn...] in rank order; the deal says which tile each value belongs to.
  std::vector<double> values(mine.objective_gptq);
  values.insert(values.end(), mine.objective_rtn.begin(), mine.objective_rtn.end());
  const std::vector<std::byte> all = comm.all_gather(std::as_bytes(std::span(values)));
  require(all.size() == 2 * deal.size() * sizeof(double), "tile exchange: ", all.size(),
          " bytes of objectives for ", deal.size(), " tiles");
  std::vector<double> gathered(2 * deal.size());
  std::memcpy(gathered.data(), all.data(), all.size());
  std::vector<double> gptq(deal.size()), rtn(deal.size());
  std::size_t k = 0;
  for (int r = 0; r < comm.size(); ++r) {
    const std::vector<std::size_t> tiles = tiles_of(deal, r);
    for (const std::size_t t : tiles) gptq[t] = gathered[k++];
    for (const std::size_t t : tiles) rtn[t] = gathered[k++];
  }
  module.objective_gptq = 0.0;
  module.objective_rtn = 0.0;
  for (std::size_t t = 0; t < deal.size(); ++t) {
    module.objective_gptq += gptq[t];
    module.objective_rtn += rtn[t];
  }
}

}  // namespace qshard
