// CheckpointWriter: the final checkpoint assembled from the layer files as PATH.tmp, renamed to
// PATH only when complete and on disk.
#include <system_error>

#include "qshard/core/disk.hpp"
#include "qshard/core/error.hpp"
#include "qshard/io/checkpoint.hpp"
#include "qshard/io/checkpoint_hash.hpp"

namespace qshard {

std::uintmax_t checkpoint_space_needed(std::uintmax_t payload_bytes) {
  return payload_bytes + payload_bytes / 64 + (std::uintmax_t{256} << 10);
}

CheckpointWriter::CheckpointWriter(std::filesystem::path path, std::uintmax_t payload_bytes)
    : path_(std::move(path)) {
  temporary_ = path_;
  temporary_ += ".tmp";
  // A stale PATH.tmp (a job killed while assembling) is replaced: its space counts as free.
  std::error_code ec;
  std::filesystem::remove(temporary_, ec);
  require(!ec, "cannot remove the stale ", temporary_, ": ", ec.message());
  if (payload_bytes > 0)
    require_space(temporary_, checkpoint_space_needed(payload_bytes), "the checkpoint");
  file_.emplace(h5::File::create(temporary_));
  const h5::Group root = file_->root();
  root.set_attr("format", std::string(kCheckpointFormat));
  root.set_attr("format_version", kCheckpointFormatVersion);
  root.create_group("layers");
  root.create_group("model");
}

CheckpointWriter::~CheckpointWriter() {
  if (!committed_) {
    file_.reset();
    std::error_code ec;
    std::filesystem::remove(temporary_, ec);
  }
}

void CheckpointWriter::add_layer_file(const std::filesystem::path& layer_file, std::int64_t index) {
  const h5::File part = h5::File::open_read(layer_file);
  const std::string name = layer_group_name(index);
  require(part.root().contains(name), layer_file, ": no group /", name);
  try {
    file_->root().copy_group(part.root(), name);
    file_->flush();  // a full disk is reported for this layer, not later by the file's close
  } catch (const Error& e) {
    throw Error(str("cannot copy /", name, " from ", layer_file, ": ", e.what()));
  }
}

void CheckpointWriter::write_model_tensor(const std::string& name, const MatrixF& values,
                                          DType dtype) {
  write_float(file_->root().open_group("model"), name, values, dtype);
}

void CheckpointWriter::commit() {
  {
    const h5::Group root = file_->root();
    const std::int64_t layers = root.attr_int("layers");
    require_layer_groups(root, layers);
    root.set_attr(kContentHashAttr, hex64(file_hash(root, stored_module_hashes(root, layers))));
  }
  file_->close();
  file_.reset();
  sync_file(temporary_);
  std::error_code ec;
  std::filesystem::rename(temporary_, path_, ec);
  require(!ec, "cannot rename ", temporary_, " to ", path_, ": ", ec.message());
  committed_ = true;
}

}  // namespace qshard
