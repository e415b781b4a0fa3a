#pragma once
// The head message of --layer_groups' boundary units (backend.hpp's send_units/receive_units):
// how many units, their rows, their columns and the bytes per value, so that the receiver can
// allocate each unit before its message arrives and refuse a sender that disagrees.
#include <cstdint>
#include <vector>

#include "qshard/comm/communicator.hpp"

namespace qshard {

struct UnitsHead {
  std::int64_t cols = 0;
  std::int64_t value_bytes = 0;    // 4 for fp32, 2 for bf16/fp16
  std::vector<std::int64_t> rows;  // one per unit, in order

  std::int64_t unit_bytes(std::size_t index) const { return rows.at(index) * cols * value_bytes; }
};

void send_units_head(Communicator& world, const UnitsHead& head, int dest);
// Throws, naming the source rank, when the head is malformed or its columns or value size are not
// `cols` and `value_bytes` (ranks of one job agree on both).
UnitsHead receive_units_head(Communicator& world, int source, std::int64_t cols,
                             std::int64_t value_bytes);

}  // namespace qshard
