#include "qshard/pipeline/layer_groups.hpp"

#include <cmath>
#include <cstdio>

#include "qshard/core/error.hpp"

namespace qshard {
namespace {

// A layer's linear parameters (attention and MLP or experts; norms are negligible).
double layer_parameters(const ModelConfig& config, std::int64_t layer) {
  double total = 0.0;
  for (const ModuleId m : layer_modules(config, layer)) {
    const auto [out, in] = module_shape(config, m);
    total += static_cast<double>(out) * static_cast<double>(in);
  }
  return total;
}

}  // namespace

std::vector<LayerBlock> layer_blocks(const ModelConfig& config, int groups) {
  const std::int64_t layers = config.num_hidden_layers;
  require(groups >= 1 && groups <= layers, "layer_groups: ", groups, " groups for a model of ",
          layers, " layers (at most one group per layer)");
  std::vector<double> cumulative(static_cast<std::size_t>(layers) + 1, 0.0);
  for (std::int64_t l = 0; l < layers; ++l)
    cumulative[static_cast<std::size_t>(l) + 1] =
        cumulative[static_cast<std::size_t>(l)] + layer_parameters(config, l);
  const double total = cumulative.back();
  std::vector<LayerBlock> blocks;
  std::int64_t begin = 0;
  for (int g = 0; g < groups; ++g) {
    std::int64_t end = layers;
    if (g + 1 < groups) {
      // The boundary nearest to the target share, leaving each later group at least one layer.
      const double target = total * static_cast<double>(g + 1) / static_cast<double>(groups);
      end = begin + 1;
      while (end < layers - (groups - g - 1) &&
             std::abs(cumulative[static_cast<std::size_t>(end) + 1] - target) <
                 std::abs(cumulative[static_cast<std::size_t>(end)] - target))
        ++end;
    }
    blocks.push_back({begin, end});
    begin = end;
  }
  return blocks;
}

int group_of_rank(int rank, int ranks, int groups) {
  require(groups >= 1 && ranks % groups == 0, "layer_groups: ", ranks, " ranks cannot form ",
          groups, " groups of equal size (use a multiple of ", groups, " ranks)");
  return rank / (ranks / groups);
}

std::string describe_blocks(const ModelConfig& config, const std::vector<LayerBlock>& blocks) {
  std::string out;
  for (const LayerBlock& b : blocks) {
    double parameters = 0.0;
    for (std::int64_t l = b.begin; l < b.end; ++l) parameters += layer_parameters(config, l);
    char amount[32];
    std::snprintf(amount, sizeof amount, "%.3g M", parameters / 1e6);
    out += str(out.empty() ? "" : ", ", "layers ", b.begin, "-", b.end - 1, " (", amount,
               " parameters)");
  }
  return out;
}

}  // namespace qshard
