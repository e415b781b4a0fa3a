#include "qshard/sweep/checkpoint_stats.hpp"

#include <string>

#include "qshard/core/error.hpp"
#include "qshard/io/hdf5.hpp"

namespace qshard {
namespace {

constexpr const char* kQuantizedTensors[] = {"qweight", "qzeros", "scales", "g_idx"};

std::int64_t dataset_bytes(const h5::Group& group, const std::string& name) {
  const h5::DatasetInfo info = group.info(name);
  std::int64_t elements = 1;
  for (const std::int64_t extent : info.shape) elements *= extent;
  return elements * static_cast<std::int64_t>(info.type_size);
}

void add_group(const h5::Group& group, CheckpointStats& stats) {
  for (const std::string& name : group.children()) {
    if (group.is_group(name)) {
      add_group(group.open_group(name), stats);
    } else {
      stats.model_bytes += dataset_bytes(group, name);
    }
  }
  // A quantized module: its packed tensors count towards the bits per weight.
  if (!group.has_attr("method") || group.attr_string("method") == "none") return;
  for (const char* tensor : kQuantizedTensors) {
    require(group.contains(tensor), group.path(), ": quantized module without ", tensor);
    stats.quantized_bytes += dataset_bytes(group, tensor);
  }
  stats.quantized_weights += group.attr_int("in_features") * group.attr_int("out_features");
}

}  // namespace

double CheckpointStats::bits_per_weight() const {
  return quantized_weights > 0
             ? 8.0 * static_cast<double>(quantized_bytes) / static_cast<double>(quantized_weights)
             : 0.0;
}

CheckpointStats checkpoint_stats(const std::filesystem::path& checkpoint) {
  const h5::File file = h5::File::open_read(checkpoint);
  CheckpointStats stats;
  add_group(file.root(), stats);
  return stats;
}

}  // namespace qshard
