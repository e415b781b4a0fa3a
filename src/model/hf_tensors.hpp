#pragma once
// Floating-point tensors of a Hugging Face directory, checked against the config: shared by the
// plain and the GPTQ weight sources.
#include <filesystem>
#include <string>

#include "qshard/core/matrix.hpp"
#include "qshard/core/tensor.hpp"
#include "qshard/io/model_config.hpp"
#include "qshard/io/safetensors.hpp"

namespace qshard::model_detail {

// The shape a tensor must have, from the config; empty when the name is not a model tensor.
Shape expected_shape(const ModelConfig& config, const std::string& name);

// `name` as fp32, checked for shape and finite values; lm_head.weight falls back to the
// embedding when the embeddings are tied. Errors name `directory` and the tensor.
MatrixF load_float_tensor(const SafetensorsModel& model, const ModelConfig& config,
                          const std::filesystem::path& directory, const std::string& name);

}  // namespace qshard::model_detail
