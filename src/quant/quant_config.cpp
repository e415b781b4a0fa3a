#include <sstream>

#include "qshard/core/error.hpp"
#include "qshard/quant/quant_config.hpp"

namespace qshard {

void QuantConfig::validate() const {
  require(bits == 2 || bits == 3 || bits == 4 || bits == 8, "bits must be 2, 3, 4 or 8 (got ", bits,
          ")");
  require(group_size == -1 || group_size > 0, "group_size must be -1 or positive (got ", group_size,
          ")");
  require(mse_grid > 0, "mse grid must be positive (got ", mse_grid, ")");
  require(mse_maxshrink > 0.0 && mse_maxshrink <= 1.0, "mse maxshrink must be in (0, 1] (got ",
          mse_maxshrink, ")");
}

void GptqOptions::validate() const {
  quant.validate();
  require(damp_percent >= 0.0, "damp_percent must not be negative (got ", damp_percent, ")");
  require(block_size > 0, "block_size must be positive (got ", block_size, ")");
  require(max_damp_steps >= 0, "max_damp_steps must not be negative (got ", max_damp_steps, ")");
}

std::string describe(const GptqOptions& o) {
  std::ostringstream out;
  out << o.quant.bits << "-bit, group " << o.quant.group_size << (o.quant.sym ? ", sym" : ", asym")
      << (o.quant.mse ? ", mse" : "") << (o.act_order ? ", act_order" : "")
      << (o.static_groups ? ", static groups" : "") << ", damp " << o.damp_percent << ", block "
      << o.block_size
      << (o.group_rule == GroupScaleRule::Reference ? ", reference group rule" : "");
  return out.str();
}

}  // namespace qshard
