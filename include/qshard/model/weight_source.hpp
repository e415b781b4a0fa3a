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

// A Hugging Face model directory (config.json + safetensors, sharded or not), memory-mapped;
// a GPTQ directory (quantization_config.quant_method "gptq") is read by open_gptq_model.
std::unique_ptr<WeightSource> open_hf_model(const std::filesystem::path& directory);

}  // namespace qshard
