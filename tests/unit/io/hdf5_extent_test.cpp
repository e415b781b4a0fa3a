// Found by the checkpoint fuzzer (tests/fuzz): a dataset's declared extent is checked against the
// storage its file holds before the reader allocates it. A malformed file made qshard allocate
// 4 TiB (std::bad_alloc, or ASan's allocation-size-too-big) for a dataset of a 100 KB file.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "io_test_support.hpp"
#include "qshard/core/error.hpp"
#include "qshard/io/hdf5.hpp"
#include "qshard/io/tokens.hpp"

namespace qshard {
namespace {

// A chunked int32 dataset of `dims` whose chunks are never written: valid HDF5 that declares
// any extent while the file holds a few KB.
void write_unwritten_dataset(const std::filesystem::path& path, const std::vector<hsize_t>& dims) {
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  const hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  const hid_t create = H5Pcreate(H5P_DATASET_CREATE);
  std::vector<hsize_t> chunk = dims;  // chunks of at most 16 along each dimension
  for (hsize_t& c : chunk) c = std::min<hsize_t>(c, 16);
  H5Pset_chunk(create, static_cast<int>(chunk.size()), chunk.data());
  const hid_t dataset =
      H5Dcreate2(file, "tokens", H5T_NATIVE_INT32, space, H5P_DEFAULT, create, H5P_DEFAULT);
  ASSERT_GE(dataset, 0);
  H5Dclose(dataset);
  H5Pclose(create);
  H5Sclose(space);
  H5Fclose(file);
}

std::string error_of(const std::filesystem::path& path) {
  try {
    h5::File::open_read(path).root().read<std::int32_t>("tokens");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Hdf5Extent, DeclaredExtentBeyondTheFileIsRefusedBeforeAllocating) {
  const test::TempDir dir;
  const auto path = dir / "huge.h5";
  write_unwritten_dataset(path, {hsize_t{1} << 20, hsize_t{1} << 20});  // 4 TiB of int32
  const std::string message = error_of(path);
  EXPECT_NE(message.find("/tokens: extent [1048576, 1048576] needs 4398046511104 bytes"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("corrupted or truncated"), std::string::npos) << message;
  EXPECT_THROW(read_tokens((dir / "huge.h5").string(), 1), Error);
}

TEST(Hdf5Extent, SmallUnwrittenDatasetsStillReadAsFillValues) {
  const test::TempDir dir;
  const auto path = dir / "small.h5";
  write_unwritten_dataset(path, {4, 8});
  const std::vector<std::int32_t> values =
      h5::File::open_read(path).root().read<std::int32_t>("tokens");
  EXPECT_EQ(values, std::vector<std::int32_t>(32, 0));
}

}  // namespace
}  // namespace qshard
