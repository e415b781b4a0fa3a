#pragma once
// A GPTQ model directory (config.json with quantization_config.quant_method "gptq", or
// quantize_config.json) as a WeightSource: packed modules are dequantized when loaded,
// w[r, c] = scales[g_idx[c], r] * (q[r, c] - zero[g_idx[c], r]) (docs/FORMATS.md).
#include <filesystem>
#include <memory>
#include <string>

#include "qshard/io/gptq_config.hpp"
#include "qshard/io/safetensors.hpp"
#include "qshard/model/weight_source.hpp"
#include "qshard/quant/quantized_weight.hpp"

namespace qshard {

std::unique_ptr<WeightSource> open_gptq_model(const std::filesystem::path& directory);

// The packed module `prefix` ("model.layers.0.self_attn.q_proj") of `out` x `in` features:
// qweight, qzeros, scales and g_idx (c / group_size when absent) checked for dtype and shape and
// unpacked with `settings` and the config's zero format. Errors name the file and the tensor.
QuantizedWeight read_gptq_module(const SafetensorsModel& model, const GptqConfig& config,
                                 const GptqModuleSettings& settings, const std::string& prefix,
                                 std::int64_t out, std::int64_t in);

}  // namespace qshard
