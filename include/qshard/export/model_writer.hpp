#pragma once
// Writes any weight source (e.g. a synthetic model) as a Hugging Face model directory: config.json
// and safetensors shards in the config's dtype with model.safetensors.index.json, streamed tensor
// by tensor; the directory appears only when complete. For timing the job's loading path from disk
// at real shapes.
#include <cstdint>
#include <filesystem>

#include "qshard/model/weight_source.hpp"

namespace qshard {

struct ModelWriteResult {
  std::int64_t tensors = 0, shards = 0;
  std::uint64_t bytes = 0;
};

// Refuses an existing non-empty `directory` unless `force`.
ModelWriteResult write_hf_model(const WeightSource& source, const std::filesystem::path& directory,
                                std::uint64_t max_shard_bytes, bool force);

}  // namespace qshard
