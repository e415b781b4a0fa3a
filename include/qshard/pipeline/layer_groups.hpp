#pragma once
// --layer_groups: the ranks split into G contiguous groups of equal size, the decoder layers into G
// contiguous blocks balanced by parameter count; group g quantizes block g.
#include <cstdint>
#include <string>
#include <vector>

#include "qshard/io/model_config.hpp"

namespace qshard {

struct LayerBlock {
  std::int64_t begin = 0, end = 0;  // layers [begin, end)
  std::int64_t size() const { return end - begin; }
};

// G non-empty contiguous blocks covering every layer: block g ends at the first layer boundary
// where the layers' cumulative parameter count reaches (g + 1) / G of the total (at least one
// layer each). Throws when G exceeds the layer count.
std::vector<LayerBlock> layer_blocks(const ModelConfig& config, int groups);

// Rank `rank`'s group among `ranks` split into `groups` contiguous groups; throws (naming both)
// when the rank count is not a multiple of the group count.
int group_of_rank(int rank, int ranks, int groups);

// "layers 0-14 (14.2 G parameters), 15-29 (14.1 G)": for the job's header.
std::string describe_blocks(const ModelConfig& config, const std::vector<LayerBlock>& blocks);

}  // namespace qshard
