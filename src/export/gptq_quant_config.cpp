// quantization_config of exported GPTQ directories.
#include "qshard/export/gptq_quant_config.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "qshard/core/error.hpp"

namespace qshard {
namespace {

// "mlp\.experts\.3\.up_proj": a module path as a regular expression.
std::string escaped(const std::string& path) {
  std::string out;
  for (const char c : path) {
    if (c == '.') out += '\\';
    out += c;
  }
  return out;
}

// "-:model\.layers\.(?:0|3)\.mlp\.gate_proj$" (all layers: "\d+"), matched from the start
// of a module name by GPTQModel.
std::string exclusion_pattern(const std::string& path, const std::set<std::int64_t>& layers,
                              std::int64_t layer_count) {
  std::ostringstream which;
  if (static_cast<std::int64_t>(layers.size()) == layer_count) {
    which << "\\d+";
  } else {
    if (layers.size() > 1) which << "(?:";
    for (auto it = layers.begin(); it != layers.end(); ++it)
      which << (it == layers.begin() ? "" : "|") << *it;
    if (layers.size() > 1) which << ')';
  }
  return str("-:model\\.layers\\.", which.str(), "\\.", escaped(path), "$");
}

}  // namespace

std::string gptq_module_name(std::int64_t layer, const std::string& path) {
  return str("model.layers.", layer, ".", path);
}

std::vector<std::vector<std::string>> sequential_groups(const ModelConfig& config) {
  std::vector<std::vector<std::string>> groups(4);
  for (std::int64_t l = 0; l < config.num_hidden_layers; ++l)
    for (const ModuleId m : layer_modules(config, l)) {
      std::vector<std::string>& group = groups[static_cast<std::size_t>(input_of(m.linear))];
      const std::string path = module_path(config, m);
      if (std::find(group.begin(), group.end(), path) == group.end()) group.push_back(path);
    }
  return groups;
}

nlohmann::json gptq_quantization_config(const GptqExportSettings& s) {
  nlohmann::json c = {
      {"quant_method", "gptq"},
      {"bits", s.bits},
      {"group_size", s.group_size},
      {"desc_act", s.desc_act},
      {"sym", s.sym},
      {"true_sequential", s.true_sequential},
      {"static_groups", s.static_groups},
      {"checkpoint_format", std::string(gptq_format_name(s.format))},
      {"pack_dtype", "int32"},
      {"lm_head", false},
      {"meta", {{"quantizer", {s.quantizer}}}},
  };
  if (s.damp_percent && *s.damp_percent > 0.0 && *s.damp_percent < 1.0)
    c["damp_percent"] = *s.damp_percent;
  if (s.excluded.empty()) {
    c["dynamic"] = nullptr;
    c["modules_in_block_to_quantize"] = nullptr;
    return c;
  }
  std::map<std::string, std::set<std::int64_t>> excluded_layers;
  for (const ExcludedModule& m : s.excluded) excluded_layers[m.path].insert(m.layer);
  nlohmann::json dynamic = nlohmann::json::object();
  for (const auto& [path, layers] : excluded_layers)
    dynamic[exclusion_pattern(path, layers, s.layers)] = nlohmann::json::object();
  c["dynamic"] = dynamic;
  // optimum replaces a block's linear by a quantized one when its full name ends with an entry:
  // modules quantized in every layer are named relative to the block, the others per layer.
  nlohmann::json in_block = nlohmann::json::array();
  for (const std::vector<std::string>& group : s.groups) {
    nlohmann::json names = nlohmann::json::array();
    for (const std::string& path : group) {
      const auto it = excluded_layers.find(path);
      if (it == excluded_layers.end()) {
        names.push_back(path);
        continue;
      }
      for (std::int64_t l = 0; l < s.layers; ++l)
        if (!it->second.contains(l)) names.push_back(gptq_module_name(l, path));
    }
    if (!names.empty()) in_block.push_back(names);
  }
  c["modules_in_block_to_quantize"] = in_block;
  return c;
}

}  // namespace qshard
