#pragma once
// Synthetic models: deterministic weights generated on the fly from a seed and the tensor's name,
// never written to disk, so a 405B-shaped job needs no 800 GB of files. They have the statistics
// GPTQ cares about: per-row scales and a few large-magnitude input channels.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "qshard/model/weight_source.hpp"

namespace qshard {

// Preset names: tiny, llama2-7b, llama3-8b, llama3-70b, llama3-405b.
std::vector<std::string> synthetic_presets();
ModelConfig synthetic_config(const std::string& preset);

// `spec` is a preset name or the path of a config.json.
std::unique_ptr<WeightSource> open_synthetic_model(const std::string& spec, std::uint64_t seed);

}  // namespace qshard
