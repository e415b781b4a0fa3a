// Checkpoint: a checkpoint opened for reading. Opening checks what the whole file promises (format,
// @layers against the layer groups and the config, the file hash over the module hashes); each
// module's data is checked against its hash when read (checkpoint.cpp).
#include <iostream>
#include <mutex>
#include <set>

#include "qshard/core/error.hpp"
#include "qshard/io/checkpoint.hpp"
#include "qshard/io/checkpoint_hash.hpp"

namespace qshard {
namespace {

// Format 1 files (no content hashes) are read; the warning comes once per file and process.
void warn_format_1(const std::filesystem::path& path) {
  static std::mutex mutex;
  static std::set<std::string> warned;
  const std::lock_guard lock(mutex);
  if (!warned.insert(path.string()).second) return;
  std::cerr << "qshard: warning: " << path
            << " is a format-1 checkpoint: it has no content hashes, only HDF5's checksums "
               "protect it\n";
}

}  // namespace

void require_layer_groups(const h5::Group& root, std::int64_t layers) {
  const std::string& file = root.file();
  require(layers >= 0, file, ": @layers = ", layers, " is negative");
  require(root.contains("layers") && root.is_group("layers"), file, ": no /layers group");
  const h5::Group group = root.open_group("layers");
  const std::vector<std::string> names = group.children();  // name order: layer order
  const std::string expected = layers == 0 ? "none"
                                           : str(layer_group_name(0).substr(7), " to ",
                                                 layer_group_name(layers - 1).substr(7));
  for (std::size_t i = 0; i < names.size(); ++i) {
    const bool in_order = static_cast<std::int64_t>(i) < layers &&
                          names[i] == layer_group_name(static_cast<std::int64_t>(i)).substr(7);
    require(in_order && group.is_group(names[i]), file, ": /layers/", names[i],
            " disagrees with @layers = ", layers, " (expected the layer groups ", expected, ")");
  }
  require(static_cast<std::int64_t>(names.size()) == layers, file, ": @layers = ", layers,
          " but /layers holds ", names.size(), " layer groups");
}

Checkpoint::Checkpoint(const std::filesystem::path& path)
    : path_(path), file_(h5::File::open_read(path)) {
  const h5::Group root = file_.root();
  require(root.has_attr("format") && root.attr_string("format") == kCheckpointFormat, path,
          " is not a qshard checkpoint (no format = \"", kCheckpointFormat, "\" attribute)");
  format_version_ = root.attr_int("format_version");
  require(format_version_ == 1 || format_version_ == kCheckpointFormatVersion, path,
          ": unsupported format_version ", format_version_, " (this qshard reads 1 to ",
          kCheckpointFormatVersion, ")");
  config_ = parse_model_config_text(root.attr_string("model_config"), path.string());
  layers_ = root.attr_int("layers");
  require_layer_groups(root, layers_);
  require(layers_ == config_.num_hidden_layers, path, ": @layers = ", layers_,
          " disagrees with @model_config's num_hidden_layers = ", config_.num_hidden_layers);
  if (format_version_ == 1) {
    warn_format_1(path);
    return;
  }
  const std::uint64_t stored = stored_hash(root);
  const std::uint64_t computed = file_hash(root, stored_module_hashes(root, layers_));
  require(stored == computed, path, ": file content hash mismatch (stored ", hex64(stored),
          ", computed ", hex64(computed),
          " from @layers, @model_config and the module hashes): the checkpoint is "
          "corrupted or was edited");
  content_hash_ = stored;
}

LayerRecord Checkpoint::layer(std::int64_t index) const {
  require(index >= 0 && index < layers_, path_, ": no layer ", index, " (", layers_, " layers)");
  return read_layer(file_, config_, index);
}

bool Checkpoint::has_model_tensor(const std::string& name) const {
  return file_.root().open_group("model").contains(name);
}

MatrixF Checkpoint::model_tensor(const std::string& name) const {
  const h5::Group model = file_.root().open_group("model");
  require(model.contains(name), path_, ": no tensor /model/", name);
  return read_float(model, name);
}

}  // namespace qshard
