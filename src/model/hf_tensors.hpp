#pragma once
// Floating-point tensors of a Hugging Face directory, checked against the config: shared by the
// plain and the GPTQ weight sources.
#include <filesystem>
#include <set>
#include <string>

#include "qshard/core/matrix.hpp"
#include "qshard/core/tensor.hpp"
#include "qshard/io/model_config.hpp"
#include "qshard/io/safetensors.hpp"

namespace qshard::model_detail {

// The shape a tensor must have, from the config; empty when the name is not a model tensor.
Shape expected_shape(const ModelConfig& config, const std::string& name);

// `name` as fp32, checked for dtype, shape and finite values (the scan of each tensor as it is
// loaded); lm_head.weight falls back to the embedding when the embeddings are tied. Errors name
// the file and the tensor (and where a non-finite value is).
MatrixF load_float_tensor(const SafetensorsModel& model, const ModelConfig& config,
                          const std::filesystem::path& directory, const std::string& name);

// The decoder layers the files hold (the highest "model.layers.N." + 1); throws naming
// config.json when num_hidden_layers is more: the config's sizes are bounded by the files before
// anything is sized by them.
std::int64_t check_stored_layers(const SafetensorsModel& model, const ModelConfig& config,
                                 const std::filesystem::path& directory);

// The whole model against its config, before any tensor's data is read: every shard's header,
// every tensor the config implies present with its shape and F32/F16/BF16, num_hidden_layers no
// more than the files hold, and (unless `allow_extra_tensors`) no tensor the config does not
// account for. Returns the names the model uses. Errors name the file and the tensor.
std::set<std::string> validate_hf_tensors(const SafetensorsModel& model, const ModelConfig& config,
                                          const std::filesystem::path& directory,
                                          bool allow_extra_tensors);

}  // namespace qshard::model_detail
