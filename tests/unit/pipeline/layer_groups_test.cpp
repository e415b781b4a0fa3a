// --layer_groups' plan: contiguous blocks balanced by parameters, equal contiguous rank groups.
#include "qshard/pipeline/layer_groups.hpp"

#include <gtest/gtest.h>

#include "qshard/model/synthetic_source.hpp"

namespace qshard {
namespace {

std::int64_t parameters(const ModelConfig& c, const LayerBlock& b) {
  std::int64_t total = 0;
  for (std::int64_t l = b.begin; l < b.end; ++l)
    for (const ModuleId m : layer_modules(c, l)) {
      const auto [out, in] = module_shape(c, m);
      total += out * in;
    }
  return total;
}

TEST(LayerGroups, BlocksCoverEveryLayerContiguouslyAndNearTheirShare) {
  const ModelConfig c = open_synthetic_model("llama2-7b", 0)->config();  // 32 equal layers
  for (const int groups : {1, 2, 3, 4, 7, 32}) {
    SCOPED_TRACE(groups);
    const std::vector<LayerBlock> blocks = layer_blocks(c, groups);
    ASSERT_EQ(blocks.size(), static_cast<std::size_t>(groups));
    EXPECT_EQ(blocks.front().begin, 0);
    EXPECT_EQ(blocks.back().end, c.num_hidden_layers);
    for (std::size_t g = 0; g < blocks.size(); ++g) {
      EXPECT_GE(blocks[g].size(), 1);
      if (g > 0) EXPECT_EQ(blocks[g].begin, blocks[g - 1].end);
      // Equal layers: every block within one layer of 32 / G.
      EXPECT_LE(std::abs(static_cast<double>(blocks[g].size()) - 32.0 / groups), 1.0);
    }
  }
  const std::vector<LayerBlock> halves = layer_blocks(c, 2);
  EXPECT_EQ(halves[0].size(), 16);
  EXPECT_EQ(parameters(c, halves[0]), parameters(c, halves[1]));
}

TEST(LayerGroups, UnequalLayersAreBalancedByParameters) {
  // Qwen2-MoE tiny: layer 1 is dense (mlp_only_layers), the others carry experts.
  const ModelConfig c = open_synthetic_model("qwen2-moe-tiny", 0)->config();
  const std::vector<LayerBlock> blocks = layer_blocks(c, 2);
  ASSERT_EQ(blocks.size(), 2u);
  // The boundary is the one nearest to half of the parameters.
  std::int64_t total = 0;
  for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) total += parameters(c, {l, l + 1});
  const std::int64_t first = parameters(c, blocks[0]);
  for (std::int64_t end = 1; end < c.num_hidden_layers; ++end)
    EXPECT_LE(std::abs(2 * first - total), std::abs(2 * parameters(c, {0, end}) - total))
        << "a boundary after layer " << end - 1 << " is nearer half";
}

TEST(LayerGroups, RefusesMoreGroupsThanLayersAndUnevenRankCounts) {
  const ModelConfig c = open_synthetic_model("tiny", 0)->config();
  EXPECT_THROW((void)layer_blocks(c, static_cast<int>(c.num_hidden_layers) + 1), Error);
  EXPECT_NO_THROW((void)layer_blocks(c, static_cast<int>(c.num_hidden_layers)));
  EXPECT_EQ(group_of_rank(0, 4, 2), 0);
  EXPECT_EQ(group_of_rank(1, 4, 2), 0);
  EXPECT_EQ(group_of_rank(2, 4, 2), 1);
  EXPECT_EQ(group_of_rank(3, 4, 2), 1);
  try {
    (void)group_of_rank(0, 3, 2);
    ADD_FAILURE() << "3 ranks in 2 groups";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("3 ranks cannot form 2 groups"), std::string::npos);
  }
}

}  // namespace
}  // namespace qshard
