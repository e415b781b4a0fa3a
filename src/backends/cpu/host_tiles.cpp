#include "qshard/backend/host_tiles.hpp"

#include <cstring>

#include "qshard/core/error.hpp"

namespace qshard {
namespace {

template <typename T>
void put(std::vector<std::byte>& out, const T& value) {
  const auto* p = reinterpret_cast<const std::byte*>(&value);
  out.insert(out.end(), p, p + sizeof(T));
}
template <typename T>
void put_span(std::vector<std::byte>& out, std::span<const T> values) {
  const auto* p = reinterpret_cast<const std::byte*>(values.data());
  out.insert(out.end(), p, p + values.size_bytes());
}
void take(std::span<const std::byte> bytes, std::size_t& offset, void* dst, std::size_t n) {
  require(offset + n <= bytes.size(), "tile exchange: truncated message");
  std::memcpy(dst, bytes.data() + offset, n);
  offset += n;
}
template <typename T>
T get(std::span<const std::byte> bytes, std::size_t& offset) {
  T value;
  take(bytes, offset, &value, sizeof(T));
  return value;
}
template <typename T>
void get_span(std::span<const std::byte> bytes, std::size_t& offset, std::span<T> out) {
  take(bytes, offset, out.data(), out.size_bytes());
}

}  // namespace

std::vector<std::size_t> tiles_of(const TileDeal& deal, int rank) {
  std::vector<std::size_t> mine;
  for (std::size_t t = 0; t < deal.size(); ++t)
    if (deal[t].owner == rank) mine.push_back(t);
  return mine;
}

void write_quantized(const QuantizedWeight& q, std::vector<std::byte>& out) {
  put(out, static_cast<std::int32_t>(q.bits));
  put(out, q.group_size);
  put(out, q.rows());
  put(out, q.cols());
  put(out, q.groups());
  put_span<std::uint8_t>(out, q.codes.values());
  put_span<float>(out, q.scales.values());
  put_span<std::int32_t>(out, q.zeros.values());
  put_span<std::int32_t>(out, q.g_idx);
}

QuantizedWeight read_quantized(std::span<const std::byte> bytes, std::size_t& offset) {
  QuantizedWeight q;
  q.bits = get<std::int32_t>(bytes, offset);
  q.group_size = get<std::int64_t>(bytes, offset);
  const auto rows = get<std::int64_t>(bytes, offset);
  const auto cols = get<std::int64_t>(bytes, offset);
  const auto groups = get<std::int64_t>(bytes, offset);
  require(
      rows >= 0 && cols >= 0 && groups >= 0 &&
          static_cast<std::size_t>(rows * (cols + 8 * groups) + 4 * cols) <= bytes.size() - offset,
      "tile exchange: corrupt message ([", rows, ", ", cols, "], ", groups, " groups)");
  q.codes = Matrix<std::uint8_t>(rows, cols);
  q.scales = MatrixF(rows, groups);
  q.zeros = Matrix<std::int32_t>(rows, groups);
  q.g_idx.resize(static_cast<std::size_t>(cols));
  get_span<std::uint8_t>(bytes, offset, q.codes.values());
  get_span<float>(bytes, offset, q.scales.values());
  get_span<std::int32_t>(bytes, offset, q.zeros.values());
  get_span<std::int32_t>(bytes, offset, q.g_idx);
  return q;
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
  std::vector<double> gptq(deal.size()), rtn(deal.size());
  std::size_t offset = 0;
  for (int r = 0; r < comm.size(); ++r) {
    const std::vector<std::size_t> tiles = tiles_of(deal, r);
    for (const std::size_t t : tiles) gptq[t] = get<double>(all, offset);
    for (const std::size_t t : tiles) rtn[t] = get<double>(all, offset);
  }
  module.objective_gptq = 0.0;
  module.objective_rtn = 0.0;
  for (std::size_t t = 0; t < deal.size(); ++t) {
    module.objective_gptq += gptq[t];
    module.objective_rtn += rtn[t];
  }
}

}  // namespace qshard
