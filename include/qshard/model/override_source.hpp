#pragma once
// A model with some tensors replaced in memory (e.g. by their quantized-dequantized values).
#include <map>
#include <memory>
#include <string>

#include "qshard/model/weight_source.hpp"

namespace qshard {

// `base` must outlive the returned source.
std::unique_ptr<WeightSource> with_overrides(const WeightSource& base,
                                             std::map<std::string, MatrixF> replacements);

}  // namespace qshard
