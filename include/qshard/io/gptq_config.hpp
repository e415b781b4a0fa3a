#pragma once
// The quantization config of a GPTQ model directory (config.json "quantization_config", or the
// older quantize_config.json) as GPTQModel, AutoGPTQ and transformers/optimum write it
// (docs/FORMATS.md).
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qshard {

// How qzeros hold a zero point: v1 ("gptq") stores zero - 1, v2 ("gptq_v2") the zero itself.
enum class GptqZeroFormat : std::uint8_t { V1, V2 };
std::string_view gptq_format_name(GptqZeroFormat format);  // "gptq" or "gptq_v2"
// Parses "gptq" / "gptq_v2"; throws naming `where` for anything else (marlin, bitblas, ...).
GptqZeroFormat parse_gptq_format(std::string_view name, std::string_view where);

// The quantization of one module.
struct GptqModuleSettings {
  int bits = 4;
  std::int64_t group_size = 128;  // -1: one group of all input features
  bool sym = true;
};

// A GPTQModel "dynamic" rule: a regular expression matched at the start of a module name
// ("model.layers.0.mlp.gate_proj"); "-:" rules keep the module in floating point, "+:" (or
// unprefixed) rules override its settings.
struct GptqDynamicRule {
  bool exclude = false;
  std::string pattern;
  std::optional<int> bits;
  std::optional<std::int64_t> group_size;
  std::optional<bool> sym;
};

struct GptqConfig {
  std::string source;  // the file it was read from, for messages
  int bits = 4;
  std::int64_t group_size = 128;
  bool sym = true;
  bool desc_act = false;
  bool static_groups = false;
  bool true_sequential = true;
  std::optional<double> damp_percent;
  GptqZeroFormat zero_format = GptqZeroFormat::V1;
  bool lm_head = false;                  // lm_head quantized too
  std::vector<GptqDynamicRule> dynamic;  // exclusions first, as GPTQModel orders them
  // Flattened modules_in_block_to_quantize: a module is quantized when its name ends with one.
  std::optional<std::vector<std::string>> modules_in_block;

  // The settings of module `name` ("model.layers.3.self_attn.q_proj", "lm_head"), or nullopt
  // when the config keeps it in floating point (a "-:" rule, modules_in_block_to_quantize, or
  // lm_head without "lm_head": true).
  std::optional<GptqModuleSettings> module(const std::string& name) const;
};

// Parses the JSON text of a GPTQ quantization config; every error names `source` and the field.
GptqConfig parse_gptq_config(std::string_view json_text, std::string_view source);
// The GPTQ config of a model directory: config.json's "quantization_config" when its
// quant_method is "gptq", else quantize_config.json when present; nullopt for a plain model.
// Throws for a quantization_config of another method (awq, bitsandbytes, ...).
std::optional<GptqConfig> read_gptq_config(const std::filesystem::path& directory);

}  // namespace qshard
