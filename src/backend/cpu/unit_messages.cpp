// Boundary units between layer groups as host messages: the backend interface's default (the CPU
// backend's units are host fp32 matrices already).
#include "qshard/backend/unit_messages.hpp"

#include <cstring>

#include "qshard/backend/backend.hpp"
#include "qshard/core/error.hpp"

namespace qshard {

void send_units_head(Communicator& world, const UnitsHead& head, int dest) {
  std::vector<std::int64_t> words = {head.cols, head.value_bytes};
  words.insert(words.end(), head.rows.begin(), head.rows.end());
  world.send(std::as_bytes(std::span<const std::int64_t>(words)), dest);
}

UnitsHead receive_units_head(Communicator& world, int source, std::int64_t cols,
                             std::int64_t value_bytes) {
  const std::vector<std::byte> message = world.receive(source);
  const std::string from = str("layer groups: the units head from rank ", source);
  require(message.size() >= 2 * sizeof(std::int64_t) && message.size() % sizeof(std::int64_t) == 0,
          from, ": ", message.size(), " bytes");
  std::vector<std::int64_t> words(message.size() / sizeof(std::int64_t));
  std::memcpy(words.data(), message.data(), message.size());
  UnitsHead head{words[0], words[1], {words.begin() + 2, words.end()}};
  require(head.cols == cols && head.value_bytes == value_bytes, from, ": ", head.cols,
          " columns of ", head.value_bytes, "-byte values, expected ", cols, " of ", value_bytes);
  for (const std::int64_t rows : head.rows) require(rows > 0, from, ": a unit of ", rows, " rows");
  return head;
}

void Backend::send_units(const ModelConfig& config, const UnitStore& units, Communicator& world,
                         int dest) const {
  UnitsHead head{config.hidden_size, sizeof(float), {}};
  for (std::size_t i = 0; i < units.size(); ++i) head.rows.push_back(units.rows(i));
  send_units_head(world, head, dest);
  for (std::size_t i = 0; i < units.size(); ++i) {
    const MatrixF unit = units.unit(i);
    world.send(std::as_bytes(std::span<const float>(unit.data(), unit.size())), dest);
  }
}

std::unique_ptr<UnitStore> Backend::receive_units(const ModelConfig& config, Communicator& world,
                                                  int source) const {
  const UnitsHead head = receive_units_head(world, source, config.hidden_size, sizeof(float));
  std::vector<MatrixF> units;
  for (const std::int64_t rows : head.rows) {
    MatrixF unit(rows, head.cols);
    world.receive_into(std::as_writable_bytes(std::span<float>(unit.data(), unit.size())), source);
    units.push_back(std::move(unit));
  }
  return store_units(config, std::move(units));
}

}  // namespace qshard
