#pragma once
// A QuantizedWeight as flat bytes in host order (bits, group size, rows, columns, groups, then
// codes, scales, zeros and g_idx), for sending it between ranks: the tile exchange's message.
#include <cstddef>
#include <span>
#include <vector>

#include "qshard/quant/quantized_weight.hpp"

namespace qshard {

// Appends the bytes of `q` to `out`.
void write_quantized(const QuantizedWeight& q, std::vector<std::byte>& out);
// Reads one QuantizedWeight from `bytes` at `offset`, advancing it past the weight; a truncated or
// inconsistent message throws qshard::Error.
QuantizedWeight read_quantized(std::span<const std::byte> bytes, std::size_t& offset);

}  // namespace qshard
