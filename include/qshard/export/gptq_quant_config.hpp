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

// "model.layers.3.mlp.down_proj" for module_path "mlp.down_proj" of layer 3.
std::string gptq_module_name(std::int64_t layer, const std::string& path);

// The module paths of `config`'s layers (module_path) in the groups transformers/optimum quantize
// one after the other with true_sequential: [q, k, v], [o], [every MLP's and expert's gate, up],
// [their down]; the union over the layers, in layer order.
std::vector<std::vector<std::string>> sequential_groups(const ModelConfig& config);

struct ExcludedModule {
  std::int64_t layer = 0;
  std::string path;    // module_path: "mlp.down_proj", "mlp.experts.3.up_proj"
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
  std::vector<std::vector<std::string>> groups;  // sequential_groups() of the model
  std::vector<ExcludedModule> excluded;
  std::string quantizer;  // meta.quantizer entry, "qshard:VERSION"
};

nlohmann::json gptq_quantization_config(const GptqExportSettings& settings);

}  // namespace qshard
