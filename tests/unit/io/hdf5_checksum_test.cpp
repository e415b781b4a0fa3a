// Datasets are stored chunked with Fletcher32 checksums: a flipped bit in a chunk makes the read
// fail, naming the file and the dataset, instead of returning wrong values.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>
#include <fstream>
#include <numeric>

#include "qshard/core/error.hpp"
#include "qshard/io/hdf5.hpp"

namespace qshard {
namespace {
namespace fs = std::filesystem;

// The file offset of the first chunk of `dataset` (HDF5's own chunk index).
haddr_t first_chunk_offset(const fs::path& file, const char* dataset) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t d = H5Dopen2(f, dataset, H5P_DEFAULT);
  const hid_t space = H5Dget_space(d);
  hsize_t offset[2] = {0, 0};
  unsigned mask = 0;
  haddr_t address = HADDR_UNDEF;
  hsize_t size = 0;
  H5Dget_chunk_info(d, space, 0, offset, &mask, &address, &size);
  H5Sclose(space);
  H5Dclose(d);
  H5Fclose(f);
  return address;
}

TEST(Hdf5Checksum, CorruptedChunkFailsToReadNamingTheDataset) {
  h5::silence_library_errors();
  const fs::path dir = fs::temp_directory_path() / "qshard-hdf5-checksum";
  fs::create_directories(dir);
  const fs::path path = dir / "data.h5";
  std::vector<std::int32_t> values(3000);
  std::iota(values.begin(), values.end(), 7);
  {
    const h5::File file = h5::File::create(path);
    file.root().write<std::int32_t>("layers/00000/q_proj/qweight", values, {100, 30});
  }
  {
    const h5::File file = h5::File::open_read(path);
    EXPECT_EQ(file.root().read<std::int32_t>("layers/00000/q_proj/qweight"), values);
  }
  const haddr_t offset = first_chunk_offset(path, "layers/00000/q_proj/qweight");
  ASSERT_NE(offset, HADDR_UNDEF);
  {
    std::fstream bytes(path, std::ios::in | std::ios::out | std::ios::binary);
    bytes.seekg(static_cast<std::streamoff>(offset + 40));
    char c = 0;
    bytes.read(&c, 1);
    c = static_cast<char>(c ^ 0x10);
    bytes.seekp(static_cast<std::streamoff>(offset + 40));
    bytes.write(&c, 1);
  }
  const h5::File file = h5::File::open_read(path);
  try {
    (void)file.root().read<std::int32_t>("layers/00000/q_proj/qweight");
    ADD_FAILURE() << "a corrupted chunk was read";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("/layers/00000/q_proj/qweight"), std::string::npos) << what;
    EXPECT_NE(what.find("Fletcher32"), std::string::npos) << what;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace qshard
