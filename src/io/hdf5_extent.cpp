#include "hdf5_extent.hpp"

#include <algorithm>

#include "qshard/core/error.hpp"
#include "qshard/io/hdf5.hpp"

namespace qshard::h5 {
namespace {

std::string extent_text(const std::vector<hsize_t>& dims) {
  std::string text = "[";
  for (std::size_t i = 0; i < dims.size(); ++i)
    text += (i > 0 ? ", " : "") + std::to_string(dims[i]);
  return text + "]";
}

}  // namespace

hsize_t readable_count(const hid_t dataset, const std::vector<hsize_t>& dims,
                       const std::string& where) {
  hsize_t count = 1;
  for (const hsize_t d : dims)
    require(!__builtin_mul_overflow(count, d, &count), where, ": extent ", extent_text(dims),
            " overflows (the file is corrupted)");
  const Handle type(H5Dget_type(dataset), H5Tclose);
  const Handle file(H5Iget_file_id(dataset), H5Fclose);
  hsize_t file_size = 0;
  require(type.valid() && file.valid() && H5Fget_filesize(file.get(), &file_size) >= 0, where,
          ": cannot query its type and file");
  hsize_t bytes = 0;
  const bool overflow = __builtin_mul_overflow(count, H5Tget_size(type.get()), &bytes);
  const hsize_t backing = std::min<hsize_t>(H5Dget_storage_size(dataset), file_size);
  require(!overflow && bytes <= kMaxExpansion * backing + kFillAllowance, where, ": extent ",
          extent_text(dims), " needs ", bytes, " bytes but the file holds ", backing,
          " for it (the file is corrupted or truncated)");
  return count;
}

}  // namespace qshard::h5
