// The checkpoint hash of the sweep reports: FNV-1a 64 over the quantized tensors as stored.
#include <cstdint>
#include <string>
#include <vector>

#include "qshard/core/error.hpp"
#include "qshard/io/checkpoint.hpp"

namespace qshard {
namespace {

class Fnv1a64 {
 public:
  void add(const void* data, std::size_t size) {
    const auto* bytes = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < size; ++i) {
      state_ ^= bytes[i];
      state_ *= 0x100000001b3ull;
    }
  }
  void add_text(const std::string& text) { add(text.data(), text.size() + 1); }  // with the NUL
  void add_int(std::int64_t value) {
    unsigned char le[8];
    for (int i = 0; i < 8; ++i)
      le[i] = static_cast<unsigned char>(static_cast<std::uint64_t>(value) >> (8 * i));
    add(le, sizeof le);
  }
  std::uint64_t value() const { return state_; }

 private:
  std::uint64_t state_ = 0xcbf29ce484222325ull;
};

// The dataset's bytes in its file type (no conversion): what the file stores.
std::vector<unsigned char> stored_bytes(const h5::Group& group, const std::string& name) {
  const std::string where = group.path() + "/" + name;
  const h5::Handle dataset(H5Dopen2(group.id(), name.c_str(), H5P_DEFAULT), H5Dclose);
  require(dataset.valid(), "checkpoint hash: cannot open dataset ", where);
  const h5::Handle type(H5Dget_type(dataset.get()), H5Tclose);
  const h5::Handle space(H5Dget_space(dataset.get()), H5Sclose);
  require(type.valid() && space.valid(), "checkpoint hash: cannot query dataset ", where);
  const auto points = static_cast<std::size_t>(H5Sget_simple_extent_npoints(space.get()));
  std::vector<unsigned char> bytes(points * H5Tget_size(type.get()));
  if (!bytes.empty()) {
    require(H5Dread(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()) >= 0,
            "checkpoint hash: cannot read dataset ", where);
  }
  return bytes;
}

void hash_group(const h5::Group& group, Fnv1a64& hash) {
  for (const std::string& name : group.children()) {  // name order
    if (group.is_group(name)) {
      hash_group(group.open_group(name), hash);
      continue;
    }
    hash.add_text(group.path() + "/" + name);
    const h5::DatasetInfo info = group.info(name);
    hash.add_int(static_cast<std::int64_t>(info.shape.size()));
    for (const std::int64_t extent : info.shape) hash.add_int(extent);
    const std::vector<unsigned char> bytes = stored_bytes(group, name);
    hash.add(bytes.data(), bytes.size());
  }
}

}  // namespace

std::uint64_t hash_quantized_tensors(const std::filesystem::path& checkpoint) {
  const h5::File file = h5::File::open_read(checkpoint);
  const h5::Group root = file.root();
  require(root.contains("layers"), checkpoint.string(),
          ": no /layers group (not a qshard checkpoint)");
  Fnv1a64 hash;
  hash_group(root.open_group("layers"), hash);
  return hash.value();
}

}  // namespace qshard
