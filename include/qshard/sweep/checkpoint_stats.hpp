#pragma once
// The size of a qshard checkpoint as stored: all tensors, and the bits per weight of its
// quantized modules (packed codes, scales, zeros and g_idx over the modules' weights).
#include <cstdint>
#include <filesystem>

namespace qshard {

struct CheckpointStats {
  std::int64_t model_bytes = 0;        // every dataset of the file (quantized + floating point)
  std::int64_t quantized_bytes = 0;    // qweight + qzeros + scales + g_idx of quantized modules
  std::int64_t quantized_weights = 0;  // in_features * out_features summed over those modules
  double bits_per_weight() const;      // 8 * quantized_bytes / quantized_weights (0 when none)
};

CheckpointStats checkpoint_stats(const std::filesystem::path& checkpoint);

}  // namespace qshard
