#pragma once
// RAII over the HDF5 C API: every hid_t is owned by exactly one object and closed by it.
// Every failing call throws qshard::Error naming the file, the object and HDF5's reason (the OS
// error text where a system call failed: "No space left on device").
#include <hdf5.h>

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace qshard::h5 {

// An owned hid_t with its closing function (H5Fclose, H5Gclose, H5Dclose, ...).
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~Handle() { reset(); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& other) noexcept : id_(other.id_), closer_(other.closer_) {
    other.id_ = H5I_INVALID_HID;
  }
  Handle& operator=(Handle&& other) noexcept;
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();
  hid_t release() { return std::exchange(id_, H5I_INVALID_HID); }  // the caller closes it

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

struct DatasetInfo {
  std::vector<std::int64_t> shape;
  H5T_class_t type_class = H5T_NO_CLASS;
  std::size_t type_size = 0;
  bool is_signed = true;
};

// A group (or the file's root group): datasets, attributes and sub-groups.
class Group {
 public:
  Group(Handle handle, std::string path, std::string file);

  Group create_group(const std::string& name) const;
  Group open_group(const std::string& name) const;
  bool contains(const std::string& name) const;  // a link of that name exists
  std::vector<std::string> children() const;     // names of links, in name order
  bool is_group(const std::string& name) const;
  const std::string& path() const { return path_; }  // "/model/layers/0"
  const std::string& file() const { return file_; }  // the file's path, for messages
  // Copies the group `name` of `source` (attributes, sub-groups, datasets with their stored
  // chunks byte for byte) into this group; every failure throws with HDF5's reason.
  void copy_group(const Group& source, const std::string& name) const;

  // Datasets of fp32, fp64, int32, int64, uint8, uint16 with any shape (row-major).
  template <typename T>
  void write(const std::string& name, std::span<const T> data,
             const std::vector<std::int64_t>& shape) const;
  template <typename T>
  std::vector<T> read(const std::string& name, std::vector<std::int64_t>* shape = nullptr) const;
  DatasetInfo info(const std::string& name) const;

  // Scalar attributes and 1-D numeric attributes on this group.
  void set_attr(const std::string& name, const std::string& value) const;
  void set_attr(const std::string& name, std::int64_t value) const;
  void set_attr(const std::string& name, double value) const;
  void set_attr(const std::string& name, std::span<const double> values) const;
  void set_attr(const std::string& name, std::span<const std::int64_t> values) const;
  bool has_attr(const std::string& name) const;
  std::vector<std::string> attr_names() const;
  std::string attr_string(const std::string& name) const;
  std::int64_t attr_int(const std::string& name) const;
  double attr_double(const std::string& name) const;
  std::vector<double> attr_doubles(const std::string& name) const;
  std::vector<std::int64_t> attr_ints(const std::string& name) const;

  hid_t id() const { return handle_.get(); }

 private:
  Handle handle_;
  std::string path_;
  std::string file_;
};

class File {
 public:
  static File create(const std::filesystem::path& path);  // truncates
  static File open_read(const std::filesystem::path& path);
  static File open_write(const std::filesystem::path& path);  // existing file, read-write
  Group root() const;
  const std::filesystem::path& path() const { return path_; }
  void flush() const;
  // Closes the file, reporting a failure (the destructor closes silently); the File is unusable
  // afterwards.
  void close();

 private:
  File(Handle handle, std::filesystem::path path)
      : handle_(std::move(handle)), path_(std::move(path)) {}
  Handle handle_;
  std::filesystem::path path_;
};

// Call first in main, before any other HDF5 call: turns the library's automatic error printing off
// (errors become exceptions instead; every thread that opens a file does the same) and its clean-up
// at exit, which crashes on a file whose close failed (a full disk).
void silence_library_errors();

// Why the last failing HDF5 call failed, from the library's error stack: the OS error text where
// a system call failed ("No space left on device"), else the innermost description; "" if none.
std::string last_error();
// `what` followed by ": " and last_error() (when there is one).
std::string with_reason(const std::string& what);
// Throws qshard::Error(with_reason(what)) unless `ok` (the HDF5 call succeeded).
void check(bool ok, const std::string& what);
// Owns `id` (returned by an HDF5 call) with `closer`; throws with_reason(what) if the call failed.
Handle checked(hid_t id, Handle::Closer closer, const std::string& what);

}  // namespace qshard::h5
