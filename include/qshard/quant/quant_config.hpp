#pragma once
// The settings users know from the reference GPTQ tools.
#include <cstdint>
#include <string>

namespace qshard {

// Where a group's scale and zero come from when the group starts inside a lazy batch.
enum class GroupScaleRule : std::uint8_t {
  Exact,      // from the fully error-compensated weights: independent of block_size (default)
  Reference,  // as the public reference code: from weights missing the batch's in-block updates
};

struct QuantConfig {
  int bits = 4;  // 2, 3, 4 or 8
  std::int64_t group_size =
      -1;            // -1: one group per row; else any positive size (last group partial)
  bool sym = false;  // symmetric: zero = (maxq + 1) / 2
  bool mse = false;  // grid search of the clipping range minimising the error
  // mse grid: shrink factors 1 - i/grid for i < maxshrink*grid; norm 2.4 as the reference tools.
  int mse_grid = 100;
  double mse_maxshrink = 0.8;
  double mse_norm = 2.4;

  std::int32_t maxq() const { return (1 << bits) - 1; }
  // Validates bits and group size; throws qshard::Error with the offending value.
  void validate() const;
};

struct GptqOptions {
  QuantConfig quant;
  double damp_percent = 0.01;  // lambda = damp_percent * mean(diag H)
  std::int64_t block_size = 128;
  bool act_order = false;      // desc_act: columns by descending diag(H), g_idx recorded
  bool static_groups = false;  // group scales from the original weights before the solve
  GroupScaleRule group_rule = GroupScaleRule::Exact;
  int max_damp_steps =
      8;  // on a failed factorisation damping is multiplied by 10, at most this often

  void validate() const;
};

std::string describe(const GptqOptions& options);  // one line, for logs

}  // namespace qshard
