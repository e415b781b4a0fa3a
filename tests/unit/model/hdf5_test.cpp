// The HDF5 wrapper: datasets of every supported element type round-trip with their shapes;
// reopening for writing keeps what was there; errors name the file and object.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "qshard/core/error.hpp"
#include "qshard/io/hdf5.hpp"
#include "tiny_model.hpp"

namespace qshard {
namespace {

template <typename T>
class Hdf5RoundTrip : public ::testing::Test {};
using ElementTypes =
    ::testing::Types<float, double, std::int32_t, std::int64_t, std::uint8_t, std::uint16_t>;
TYPED_TEST_SUITE(Hdf5RoundTrip, ElementTypes);

TYPED_TEST(Hdf5RoundTrip, ValuesAndShape) {
  using T = TypeParam;
  h5::silence_library_errors();
  const test::TempDir dir("qshard-h5");
  const auto path = dir.path() / "x.h5";
  std::vector<T> values;
  for (int i = 0; i < 24; ++i) values.push_back(static_cast<T>(i * 3 + 1));
  values.back() = std::numeric_limits<T>::max();
  values.front() = std::numeric_limits<T>::lowest();
  {
    const h5::File file = h5::File::create(path);
    file.root().create_group("g").write<T>("v", values, {2, 3, 4});
    file.root().write<T>("empty", std::vector<T>{}, {0, 5});
  }
  const h5::File file = h5::File::open_read(path);
  std::vector<std::int64_t> shape;
  EXPECT_EQ(file.root().open_group("g").read<T>("v", &shape), values);
  EXPECT_EQ(shape, (std::vector<std::int64_t>{2, 3, 4}));
  const h5::DatasetInfo info = file.root().info("g/v");
  EXPECT_EQ(info.shape, shape);
  EXPECT_EQ(info.type_size, sizeof(T));
  EXPECT_EQ(info.is_signed, std::numeric_limits<T>::is_signed);
  EXPECT_EQ(info.type_class, std::numeric_limits<T>::is_integer ? H5T_INTEGER : H5T_FLOAT);
  EXPECT_TRUE(file.root().read<T>("empty", &shape).empty());
  EXPECT_EQ(shape, (std::vector<std::int64_t>{0, 5}));
}

TEST(Hdf5, OpenWriteKeepsContentAndErrorsNameFileAndObject) {
  h5::silence_library_errors();
  const test::TempDir dir("qshard-h5");
  const auto path = dir.path() / "y.h5";
  {
    const h5::File file = h5::File::create(path);
    file.root().write<double>("a", std::vector<double>{1.0, 2.0}, {2});
    file.root().set_attr("note", std::string());
  }
  {
    const h5::File file = h5::File::open_write(path);
    file.root().write<std::int32_t>("b", std::vector<std::int32_t>{7}, {1});
    file.root().set_attr("note", std::string("second"));  // replaces the attribute
    file.flush();
  }
  const h5::File file = h5::File::open_read(path);
  EXPECT_EQ(file.root().children(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(file.root().attr_string("note"), "second");
  EXPECT_EQ(file.root().attr_names(), (std::vector<std::string>{"note"}));
  try {
    file.root().read<float>("missing/thing");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("/missing/thing"), std::string::npos) << e.what();
  }
  try {
    h5::File::open_read(dir.path() / "absent.h5");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("absent.h5"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
  }
  EXPECT_THROW(file.root().write<float>("c", std::vector<float>{1.0f}, {2}), Error);
}

}  // namespace
}  // namespace qshard
