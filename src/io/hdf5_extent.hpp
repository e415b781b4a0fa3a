#pragma once
// The element count of a dataset as read into memory, bounded by what its file can hold: a
// malformed file may declare any extent, and readers allocate it before HDF5 reads a byte.
#include <hdf5.h>

#include <string>
#include <vector>

namespace qshard::h5 {

// The product of `dims`; throws qshard::Error naming `where` when it overflows, or when the
// extent's bytes exceed what the file can back: kMaxExpansion times the dataset's storage
// (bounded by the file size; deflate, HDF5's strongest standard filter, expands at most 1032
// times) plus kFillAllowance bytes for datasets left (partly) unwritten, read as fill values.
hsize_t readable_count(hid_t dataset, const std::vector<hsize_t>& dims, const std::string& where);

inline constexpr hsize_t kMaxExpansion = 1032;
inline constexpr hsize_t kFillAllowance = hsize_t{1} << 20;

}  // namespace qshard::h5
