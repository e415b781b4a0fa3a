#pragma once
// Where a model's weights come from: a Hugging Face directory, a synthetic generator, a qshard
// checkpoint, or any of these with some modules replaced by their quantized versions.
#include <filesystem>
#include <memory>
#include <string>

#include "qshard/core/matrix.hpp"
#include "qshard/io/model_config.hpp"

namespace qshard {

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual const ModelConfig& config() const = 0;
  virtual bool contains(const std::string& name) const = 0;
  // The tensor converted to fp32; 1-D tensors as [1, n]. Throws naming the source and tensor.
  virtual MatrixF load(const std::string& name) const = 0;
  virtual std::string describe() const = 0;
};

struct ModelOpenOptions {
  // Tensors the config does not account for (more layers than num_hidden_layers, unknown names,
  // biases it does not declare) are ignored instead of refused.
  bool allow_extra_tensors = false;
};

// A Hugging Face model directory (config.json + safetensors, sharded or not), memory-mapped;
// a GPTQ directory (quantization_config.quant_method "gptq") is read by open_gptq_model. The whole
// model is validated when it opens, before any tensor is read (model_detail::validate_hf_tensors):
// a missing, misshapen or non-float tensor, an unaccounted one, or a config that promises more
// layers than the files hold is an error naming the file and tensor.
std::unique_ptr<WeightSource> open_hf_model(const std::filesystem::path& directory,
                                            const ModelOpenOptions& options = {});

// "synthetic:NAME" → a synthetic model (model/synthetic_source.hpp); anything else → a Hugging
// Face directory (open_hf_model). Defined in model/open_model.cpp.
std::unique_ptr<WeightSource> open_model(const std::string& spec, std::uint64_t seed,
                                         const ModelOpenOptions& options = {});

}  // namespace qshard
