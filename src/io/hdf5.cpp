#include "qshard/io/hdf5.hpp"

#include <algorithm>

#include <cstdint>
#include <type_traits>

#include "hdf5_extent.hpp"
#include "qshard/core/error.hpp"

namespace qshard::h5 {
namespace {

template <typename T>
hid_t native_type() {
  if constexpr (std::is_same_v<T, float>) return H5T_NATIVE_FLOAT;
  if constexpr (std::is_same_v<T, double>) return H5T_NATIVE_DOUBLE;
  if constexpr (std::is_same_v<T, std::int32_t>) return H5T_NATIVE_INT32;
  if constexpr (std::is_same_v<T, std::int64_t>) return H5T_NATIVE_INT64;
  if constexpr (std::is_same_v<T, std::uint8_t>) return H5T_NATIVE_UINT8;
  if constexpr (std::is_same_v<T, std::uint16_t>) return H5T_NATIVE_UINT16;
}

std::string child_path(const std::string& parent, const std::string& name) {
  return parent == "/" ? "/" + name : parent + "/" + name;
}

// Iteration callback of H5Literate / H5Aiterate2: appends each name to a std::vector<std::string>.
template <typename Info>
herr_t collect_name(hid_t, const char* name, const Info*, void* names) {
  static_cast<std::vector<std::string>*>(names)->emplace_back(name);
  return 0;
}

// HDF5 (thread-safe build) prints errors per thread unless told not to: every thread that opens a
// file turns it off, since every failure becomes an exception.
void silence_this_thread() {
  thread_local bool silenced = false;
  if (!silenced) H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  silenced = true;
}

Handle scalar_space() {
  return checked(H5Screate(H5S_SCALAR), H5Sclose, "H5Screate(scalar) failed");
}

}  // namespace

Handle& Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    reset();
    id_ = other.id_;
    closer_ = other.closer_;
    other.id_ = H5I_INVALID_HID;
  }
  return *this;
}

void Handle::reset() {
  if (id_ >= 0 && closer_ != nullptr) closer_(id_);
  id_ = H5I_INVALID_HID;
}

Group::Group(Handle handle, std::string path, std::string file)
    : handle_(std::move(handle)), path_(std::move(path)), file_(std::move(file)) {}

Group Group::create_group(const std::string& name) const {
  const std::string path = child_path(path_, name);
  return Group(checked(H5Gcreate2(id(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                       H5Gclose, str(file_, ": cannot create group ", path)),
               path, file_);
}

Group Group::open_group(const std::string& name) const {
  const std::string path = child_path(path_, name);
  require(contains(name), file_, ": no group ", path);
  return Group(checked(H5Gopen2(id(), name.c_str(), H5P_DEFAULT), H5Gclose,
                       str(file_, ": cannot open group ", path)),
               path, file_);
}

bool Group::contains(const std::string& name) const {
  // Check every component of a relative path ("a/b/c"), as H5Lexists requires.
  std::string prefix;
  std::size_t start = 0;
  while (start <= name.size()) {
    const std::size_t slash = name.find('/', start);
    prefix = name.substr(0, slash);
    if (H5Lexists(id(), prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return true;
}

std::vector<std::string> Group::children() const {
  std::vector<std::string> names;
  H5Literate(id(), H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_name<H5L_info_t>, &names);
  return names;
}

template <typename T>
void Group::write(const std::string& name, std::span<const T> data,
                  const std::vector<std::int64_t>& shape) const {
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  hsize_t count = 1;
  for (const hsize_t d : dims) count *= d;
  const std::string path = child_path(path_, name);
  require(count == data.size(), file_, ": dataset ", path, " given ", data.size(),
          " values for its shape");
  const Handle space =
      checked(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose,
              str(file_, ": bad shape for ", path));
  // "a/b/name" creates the groups a and a/b where missing.
  const Handle links = checked(H5Pcreate(H5P_LINK_CREATE), H5Pclose,
                               str(file_, ": cannot create a property list for ", path));
  check(H5Pset_create_intermediate_group(links.get(), 1) >= 0,
        str(file_, ": cannot set intermediate group creation for ", path));
  // Every non-empty array is stored in chunks of about 4 MiB along its first dimension, each with
  // a Fletcher32 checksum: a corrupted chunk fails to read instead of returning wrong values.
  const Handle create = checked(H5Pcreate(H5P_DATASET_CREATE), H5Pclose,
                                str(file_, ": cannot create a property list for ", path));
  if (!dims.empty() && count > 0) {
    std::vector<hsize_t> chunk = dims;
    const hsize_t row_bytes = count / dims[0] * sizeof(T);
    chunk[0] =
        std::clamp<hsize_t>((hsize_t{4} << 20) / std::max<hsize_t>(row_bytes, 1), 1, dims[0]);
    check(H5Pset_chunk(create.get(), static_cast<int>(chunk.size()), chunk.data()) >= 0 &&
              H5Pset_fletcher32(create.get()) >= 0,
          str(file_, ": cannot set the chunked, checksummed layout of ", path));
  }
  Handle dataset = checked(H5Dcreate2(id(), name.c_str(), native_type<T>(), space.get(),
                                      links.get(), create.get(), H5P_DEFAULT),
                           H5Dclose, str(file_, ": cannot create dataset ", path));
  if (count > 0) {
    check(
        H5Dwrite(dataset.get(), native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()) >= 0,
        str(file_, ": cannot write dataset ", path));
  }
  // Chunks wait in HDF5's cache until the dataset closes: a full disk shows here.
  check(H5Dclose(dataset.release()) >= 0, str(file_, ": cannot write dataset ", path));
}

template <typename T>
std::vector<T> Group::read(const std::string& name, std::vector<std::int64_t>* shape) const {
  const std::string path = child_path(path_, name);
  require(contains(name), file_, ": no dataset ", path);
  const Handle dataset = checked(H5Dopen2(id(), name.c_str(), H5P_DEFAULT), H5Dclose,
                                 str(file_, ": cannot open dataset ", path));
  const Handle space =
      checked(H5Dget_space(dataset.get()), H5Sclose, str(file_, ": no dataspace for ", path));
  const int rank = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> dims(static_cast<std::size_t>(std::max(rank, 0)));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  const hsize_t count = readable_count(dataset.get(), dims, str(file_, ": dataset ", path));
  std::vector<T> values(count);
  if (count > 0) {
    check(
        H5Dread(dataset.get(), native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) >= 0,
        str(file_, ": cannot read dataset ", path,
            " (a chunk failed its Fletcher32 checksum: the file is corrupted; or an I/O error)"));
  }
  if (shape != nullptr) shape->assign(dims.begin(), dims.end());
  return values;
}

bool Group::is_group(const std::string& name) const {
  if (!contains(name)) return false;
  const Handle object = checked(H5Oopen(id(), name.c_str(), H5P_DEFAULT), H5Oclose,
                                str(file_, ": cannot open ", child_path(path_, name)));
  return H5Iget_type(object.get()) == H5I_GROUP;
}

DatasetInfo Group::info(const std::string& name) const {
  const std::string path = child_path(path_, name);
  require(contains(name), file_, ": no dataset ", path);
  const Handle dataset = checked(H5Dopen2(id(), name.c_str(), H5P_DEFAULT), H5Dclose,
                                 str(file_, ": cannot open dataset ", path));
  const Handle space =
      checked(H5Dget_space(dataset.get()), H5Sclose, str(file_, ": no dataspace for ", path));
  const Handle type =
      checked(H5Dget_type(dataset.get()), H5Tclose, str(file_, ": no type for ", path));
  DatasetInfo out;
  const int rank = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> dims(static_cast<std::size_t>(std::max(rank, 0)));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  out.shape.assign(dims.begin(), dims.end());
  out.type_class = H5Tget_class(type.get());
  out.type_size = H5Tget_size(type.get());
  out.is_signed = out.type_class != H5T_INTEGER || H5Tget_sign(type.get()) == H5T_SGN_2;
  return out;
}

namespace {
void write_attribute(hid_t object, const std::string& name, hid_t type, hid_t space,
                     const void* data, const std::string& where) {
  if (H5Aexists(object, name.c_str()) > 0) H5Adelete(object, name.c_str());
  const Handle attr =
      checked(H5Acreate2(object, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
              str(where, ": cannot create attribute ", name));
  check(H5Awrite(attr.get(), type, data) >= 0, str(where, ": cannot write attribute ", name));
}
}  // namespace

void Group::set_attr(const std::string& name, const std::string& value) const {
  const Handle type = checked(H5Tcopy(H5T_C_S1), H5Tclose, "H5Tcopy failed");
  H5Tset_size(type.get(), std::max<std::size_t>(value.size(), 1));
  H5Tset_strpad(type.get(), H5T_STR_NULLPAD);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  const std::string padded = value.empty() ? std::string(1, '\0') : value;
  write_attribute(id(), name, type.get(), scalar_space().get(), padded.data(), file_ + ":" + path_);
}

void Group::set_attr(const std::string& name, std::int64_t value) const {
  write_attribute(id(), name, H5T_NATIVE_INT64, scalar_space().get(), &value, file_ + ":" + path_);
}

void Group::set_attr(const std::string& name, double value) const {
  write_attribute(id(), name, H5T_NATIVE_DOUBLE, scalar_space().get(), &value, file_ + ":" + path_);
}

void Group::set_attr(const std::string& name, std::span<const double> values) const {
  const hsize_t dims[1] = {values.size()};
  const Handle space =
      checked(H5Screate_simple(1, dims, nullptr), H5Sclose, "H5Screate_simple failed");
  write_attribute(id(), name, H5T_NATIVE_DOUBLE, space.get(), values.data(), file_ + ":" + path_);
}

void Group::set_attr(const std::string& name, std::span<const std::int64_t> values) const {
  const hsize_t dims[1] = {values.size()};
  const Handle space =
      checked(H5Screate_simple(1, dims, nullptr), H5Sclose, "H5Screate_simple failed");
  write_attribute(id(), name, H5T_NATIVE_INT64, space.get(), values.data(), file_ + ":" + path_);
}

bool Group::has_attr(const std::string& name) const { return H5Aexists(id(), name.c_str()) > 0; }

std::vector<std::string> Group::attr_names() const {
  std::vector<std::string> names;
  H5Aiterate2(id(), H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_name<H5A_info_t>, &names);
  return names;
}

namespace {
Handle open_attribute(hid_t object, const std::string& name, const std::string& where) {
  require(H5Aexists(object, name.c_str()) > 0, where, ": no attribute ", name);
  return checked(H5Aopen(object, name.c_str(), H5P_DEFAULT), H5Aclose,
                 str(where, ": cannot open attribute ", name));
}
}  // namespace

std::string Group::attr_string(const std::string& name) const {
  const std::string where = file_ + ":" + path_;
  const Handle attr = open_attribute(id(), name, where);
  const Handle type =
      checked(H5Aget_type(attr.get()), H5Tclose, str(where, ": attribute ", name, " has no type"));
  require(H5Tget_class(type.get()) == H5T_STRING, where, ": attribute ", name, " is not a string");
  if (H5Tis_variable_str(type.get()) > 0) {
    char* value = nullptr;
    const Handle memtype = checked(H5Tcopy(H5T_C_S1), H5Tclose, "H5Tcopy failed");
    H5Tset_size(memtype.get(), H5T_VARIABLE);
    require(H5Aread(attr.get(), memtype.get(), &value) >= 0, where, ": cannot read attribute ",
            name);
    std::string out = value != nullptr ? value : "";
    H5free_memory(value);
    return out;
  }
  const std::size_t size = H5Tget_size(type.get());
  std::string value(size, '\0');
  require(H5Aread(attr.get(), type.get(), value.data()) >= 0, where, ": cannot read attribute ",
          name);
  value.resize(value.find('\0') == std::string::npos ? size : value.find('\0'));
  return value;
}

std::int64_t Group::attr_int(const std::string& name) const {
  const Handle attr = open_attribute(id(), name, file_ + ":" + path_);
  std::int64_t value = 0;
  require(H5Aread(attr.get(), H5T_NATIVE_INT64, &value) >= 0, file_, ":", path_,
          ": cannot read attribute ", name);
  return value;
}

double Group::attr_double(const std::string& name) const {
  const Handle attr = open_attribute(id(), name, file_ + ":" + path_);
  double value = 0;
  require(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &value) >= 0, file_, ":", path_,
          ": cannot read attribute ", name);
  return value;
}

std::vector<double> Group::attr_doubles(const std::string& name) const {
  const Handle attr = open_attribute(id(), name, file_ + ":" + path_);
  const Handle space = checked(H5Aget_space(attr.get()), H5Sclose, "H5Aget_space failed");
  std::vector<double> values(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space.get())));
  require(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, values.data()) >= 0, file_, ":", path_,
          ": cannot read attribute ", name);
  return values;
}

std::vector<std::int64_t> Group::attr_ints(const std::string& name) const {
  const Handle attr = open_attribute(id(), name, file_ + ":" + path_);
  const Handle space = checked(H5Aget_space(attr.get()), H5Sclose, "H5Aget_space failed");
  std::vector<std::int64_t> values(
      static_cast<std::size_t>(H5Sget_simple_extent_npoints(space.get())));
  require(H5Aread(attr.get(), H5T_NATIVE_INT64, values.data()) >= 0, file_, ":", path_,
          ": cannot read attribute ", name);
  return values;
}

File File::create(const std::filesystem::path& path) {
  silence_this_thread();
  const hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  check(id >= 0, str("cannot create HDF5 file ", path));
  return File(Handle(id, H5Fclose), path);
}

File File::open_read(const std::filesystem::path& path) {
  silence_this_thread();
  require(std::filesystem::exists(path), "HDF5 file ", path, " does not exist");
  const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  check(id >= 0, str("cannot open ", path, " as an HDF5 file"));
  return File(Handle(id, H5Fclose), path);
}

File File::open_write(const std::filesystem::path& path) {
  silence_this_thread();
  require(std::filesystem::exists(path), "HDF5 file ", path, " does not exist");
  const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  check(id >= 0, str("cannot open ", path, " for writing as an HDF5 file"));
  return File(Handle(id, H5Fclose), path);
}

Group File::root() const {
  return Group(
      checked(H5Gopen2(handle_.get(), "/", H5P_DEFAULT), H5Gclose, str(path_, ": cannot open /")),
      "/", path_.string());
}

void File::flush() const {
  check(H5Fflush(handle_.get(), H5F_SCOPE_GLOBAL) >= 0, str("cannot flush ", path_));
}

void File::close() { check(H5Fclose(handle_.release()) >= 0, str("cannot close ", path_)); }

void silence_library_errors() {
  // Called before the library starts: no clean-up at exit. HDF5 1.10 crashes (SIGSEGV in
  // H5F__close_cb) cleaning up a file whose close failed, e.g. on a full disk; qshard closes
  // every file itself.
  H5dont_atexit();
  silence_this_thread();
}

#define QSHARD_H5_INSTANTIATE(T)                                         \
  template void Group::write<T>(const std::string&, std::span<const T>,  \
                                const std::vector<std::int64_t>&) const; \
  template std::vector<T> Group::read<T>(const std::string&, std::vector<std::int64_t>*) const;
QSHARD_H5_INSTANTIATE(float)
QSHARD_H5_INSTANTIATE(double)
QSHARD_H5_INSTANTIATE(std::int32_t)
QSHARD_H5_INSTANTIATE(std::int64_t)
QSHARD_H5_INSTANTIATE(std::uint8_t)
QSHARD_H5_INSTANTIATE(std::uint16_t)
#undef QSHARD_H5_INSTANTIATE

}  // namespace qshard::h5
