// verify_checkpoint (qshard-inspect --verify): reads the whole checkpoint and checks everything a
// reader relies on, stopping at the first failure with the dataset or module named.
#include <algorithm>
#include <set>
#include <vector>

#include "qshard/core/error.hpp"
#include "qshard/io/checkpoint.hpp"
#include "qshard/io/checkpoint_hash.hpp"

namespace qshard {
namespace {

// Reads a dataset in its file type, in slabs of about 64 MiB along its first dimension: every
// chunk passes HDF5's Fletcher32 check or the read fails.
void read_through(const h5::Group& group, const std::string& name) {
  const std::string where =
      str(group.file(), ": dataset ", group.path() == "/" ? "" : group.path(), "/", name);
  const h5::Handle dataset = h5::checked(H5Dopen2(group.id(), name.c_str(), H5P_DEFAULT), H5Dclose,
                                         str(where, ": cannot open"));
  const h5::Handle type =
      h5::checked(H5Dget_type(dataset.get()), H5Tclose, str(where, ": no type"));
  const h5::Handle space =
      h5::checked(H5Dget_space(dataset.get()), H5Sclose, str(where, ": no dataspace"));
  require(H5Tis_variable_str(type.get()) <= 0 && H5Tdetect_class(type.get(), H5T_VLEN) <= 0, where,
          ": variable-length data (a qshard checkpoint has none)");
  const int rank = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> dims(static_cast<std::size_t>(std::max(rank, 0)));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  const auto points = static_cast<hsize_t>(H5Sget_simple_extent_npoints(space.get()));
  if (points == 0) return;
  const std::string failed =
      " (a chunk failed its Fletcher32 checksum: the file is corrupted; "
      "or an I/O error)";
  const hsize_t element = H5Tget_size(type.get());
  if (rank == 0) {
    std::vector<unsigned char> value(element);
    h5::check(H5Dread(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, value.data()) >= 0,
              str(where, ": cannot read", failed));
    return;
  }
  const hsize_t row_points = points / dims[0];
  const hsize_t step = std::clamp<hsize_t>(
      (hsize_t{64} << 20) / std::max<hsize_t>(row_points * element, 1), 1, dims[0]);
  std::vector<unsigned char> buffer(static_cast<std::size_t>(step * row_points * element));
  for (hsize_t first = 0; first < dims[0]; first += step) {
    std::vector<hsize_t> start(dims.size(), 0), extent = dims;
    start[0] = first;
    extent[0] = std::min(step, dims[0] - first);
    h5::check(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, extent.data(),
                                  nullptr) >= 0,
              str(where, ": cannot select rows ", first));
    const h5::Handle memory = h5::checked(H5Screate_simple(rank, extent.data(), nullptr), H5Sclose,
                                          str(where, ": cannot make a dataspace"));
    h5::check(H5Dread(dataset.get(), type.get(), memory.get(), space.get(), H5P_DEFAULT,
                      buffer.data()) >= 0,
              str(where, ": cannot read rows ", first, " to ", first + extent[0] - 1, failed));
  }
}

// Every dataset under `group`, except a module's payload, which read_layer reads and hashes.
void read_all(const h5::Group& group, bool module_group) {
  static const std::set<std::string> payload = {"qweight", "qzeros", "scales",
                                                "g_idx",   "weight", "bias"};
  for (const std::string& name : group.children()) {
    if (group.is_group(name)) {
      // A layer group's ("/layers/00003") subgroups are its modules.
      const std::string& path = group.path();
      const bool layer_group =
          path.starts_with("/layers/") && path.find('/', 8) == std::string::npos;
      read_all(group.open_group(name), layer_group);
    } else if (!(module_group && payload.contains(name))) {
      read_through(group, name);
    }
  }
}

}  // namespace

CheckpointVerification verify_checkpoint(const std::filesystem::path& path) {
  const Checkpoint checkpoint(path);  // format, @layers, file hash over the stored module hashes
  CheckpointVerification out;
  out.format_version = checkpoint.format_version();
  std::vector<std::uint64_t> hashes;
  for (std::int64_t l = 0; l < checkpoint.layer_count(); ++l) {
    for (const ModuleRecord& m : checkpoint.layer(l).modules) hashes.push_back(m.content_hash);
  }
  out.modules = static_cast<std::int64_t>(hashes.size());
  read_all(checkpoint.file().root(), false);
  out.hash = file_hash(checkpoint.file().root(), hashes);
  if (const auto stored = checkpoint.content_hash())
    require(*stored == out.hash, path, ": file content hash mismatch (stored ", hex64(*stored),
            ", computed ", hex64(out.hash), " from the data)");
  return out;
}

}  // namespace qshard
