// Group::copy_group: a group copied between files by hand (attributes, sub-groups, datasets with
// their chunks byte for byte). HDF5 1.10's H5Ocopy crashes (SIGSEGV inside H5O_copy_header_map)
// when a write fails, e.g. on a full disk; here every failure is an exception with HDF5's reason.
#include <string>
#include <vector>

#include "qshard/core/error.hpp"
#include "qshard/io/hdf5.hpp"

namespace qshard::h5 {
namespace {

herr_t collect_attribute(hid_t, const char* name, const H5A_info_t*, void* names) {
  static_cast<std::vector<std::string>*>(names)->emplace_back(name);
  return 0;
}

// Fixed-size types only: variable-length data would need its memory reclaimed (qshard never
// writes any).
void require_fixed_size(hid_t type, const std::string& where) {
  require(H5Tis_variable_str(type) <= 0 && H5Tdetect_class(type, H5T_VLEN) <= 0, where,
          ": cannot copy variable-length data");
}

void copy_attributes(hid_t from, hid_t to, const std::string& where) {
  std::vector<std::string> names;
  check(H5Aiterate2(from, H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_attribute, &names) >= 0,
        str(where, ": cannot list attributes"));
  for (const std::string& name : names) {
    const std::string what = str(where, ": attribute ", name);
    const Handle attr =
        checked(H5Aopen(from, name.c_str(), H5P_DEFAULT), H5Aclose, str("cannot open ", what));
    const Handle type = checked(H5Aget_type(attr.get()), H5Tclose, str("no type for ", what));
    const Handle space = checked(H5Aget_space(attr.get()), H5Sclose, str("no space for ", what));
    require_fixed_size(type.get(), what);
    std::vector<unsigned char> bytes(
        static_cast<std::size_t>(H5Sget_simple_extent_npoints(space.get())) *
        H5Tget_size(type.get()));
    check(H5Aread(attr.get(), type.get(), bytes.data()) >= 0, str("cannot read ", what));
    const Handle copy =
        checked(H5Acreate2(to, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                H5Aclose, str("cannot create ", what));
    check(H5Awrite(copy.get(), type.get(), bytes.data()) >= 0, str("cannot write ", what));
  }
}

void copy_dataset(const Group& from, const std::string& name, const Group& to) {
  const std::string source = str(from.file(), ": dataset ", from.path(), "/", name);
  const std::string target = str(to.file(), ": dataset ", to.path(), "/", name);
  const Handle in = checked(H5Dopen2(from.id(), name.c_str(), H5P_DEFAULT), H5Dclose,
                            str("cannot open ", source));
  const Handle type = checked(H5Dget_type(in.get()), H5Tclose, str("no type for ", source));
  const Handle space = checked(H5Dget_space(in.get()), H5Sclose, str("no space for ", source));
  const Handle create =
      checked(H5Dget_create_plist(in.get()), H5Pclose, str("no creation properties for ", source));
  require_fixed_size(type.get(), source);
  Handle out = checked(H5Dcreate2(to.id(), name.c_str(), type.get(), space.get(), H5P_DEFAULT,
                                  create.get(), H5P_DEFAULT),
                       H5Dclose, str("cannot create ", target));
  std::vector<unsigned char> bytes;
  if (H5Pget_layout(create.get()) == H5D_CHUNKED) {
    // The stored chunks as they are: filtered, with their Fletcher32 checksums.
    hsize_t chunks = 0;
    check(H5Dget_num_chunks(in.get(), space.get(), &chunks) >= 0,
          str("cannot count the chunks of ", source));
    std::vector<hsize_t> offset(
        static_cast<std::size_t>(std::max(H5Sget_simple_extent_ndims(space.get()), 1)));
    for (hsize_t i = 0; i < chunks; ++i) {
      unsigned mask = 0;
      haddr_t address = HADDR_UNDEF;
      hsize_t size = 0;
      check(H5Dget_chunk_info(in.get(), space.get(), i, offset.data(), &mask, &address, &size) >= 0,
            str("cannot locate chunk ", i, " of ", source));
      bytes.resize(static_cast<std::size_t>(size));
      std::uint32_t filters = 0;
      check(H5Dread_chunk(in.get(), H5P_DEFAULT, offset.data(), &filters, bytes.data()) >= 0,
            str("cannot read chunk ", i, " of ", source));
      check(H5Dwrite_chunk(out.get(), H5P_DEFAULT, filters, offset.data(), size, bytes.data()) >= 0,
            str("cannot write chunk ", i, " of ", target));
    }
  } else if (const auto points = H5Sget_simple_extent_npoints(space.get()); points > 0) {
    bytes.resize(static_cast<std::size_t>(points) * H5Tget_size(type.get()));
    check(H5Dread(in.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()) >= 0,
          str("cannot read ", source));
    check(H5Dwrite(out.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()) >= 0,
          str("cannot write ", target));
  }
  copy_attributes(in.get(), out.get(), target);
  check(H5Dclose(out.release()) >= 0, str("cannot write ", target));
}

}  // namespace

void Group::copy_group(const Group& source, const std::string& name) const {
  const Group from = source.open_group(name);
  const Group to = create_group(name);
  copy_attributes(from.id(), to.id(), str(to.file(), ": group ", to.path()));
  for (const std::string& child : from.children()) {
    if (from.is_group(child))
      to.copy_group(from, child);
    else
      copy_dataset(from, child, to);
  }
}

}  // namespace qshard::h5
