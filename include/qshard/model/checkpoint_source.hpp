#pragma once
// A qshard HDF5 checkpoint as a model: quantized modules are dequantized when loaded.
#include <filesystem>
#include <memory>

#include "qshard/model/weight_source.hpp"

namespace qshard {

std::unique_ptr<WeightSource> open_checkpoint_model(const std::filesystem::path& path);

}  // namespace qshard
