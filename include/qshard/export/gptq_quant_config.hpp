#pragma once
// The "quantization_config" of an exported GPTQ directory (also written as quantize_config.json),
// with the modules kept in floating point excluded in the two ways clients read
// (docs/FORMATS.md): GPTQModel's "dynamic" negative rules and transformers/optimum's
// modules_in_block_to_quantize.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "qshard/io/gptq_config.hpp"
#include "qshard/io/model_config.hpp"

namespace qshard {

// "model.layers.3.mlp.down_proj"
std::string gptq_module_name(std::int64_t layer, Linear linear);

struct ExcludedModule {
  std::int64_t layer = 0;
  Linear linear = Linear::Q;
  std::string reason;  // printed by the export
};

struct GptqExportSettings {
  int bits = 4;
  std::int64_t group_size = -1;
  bool sym = false;
  bool desc_act = false;
  bool static_groups = false;
  bool true_sequential = true;
  std::optional<double> damp_percent;  // written when clients accept it: 0 < value < 1
  GptqZeroFormat format = GptqZeroFormat::V1;
  std::int64_t layers = 0;
  std::vector<ExcludedModule> excluded;
  std::string quantizer;  // meta.quantizer entry, "qshard:VERSION"
};

nlohmann::json gptq_quantization_config(const GptqExportSettings& settings);

}  // namespace qshard
