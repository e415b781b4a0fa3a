// Token sets: raw int32 and HDF5 files, seeded windows, vocabulary checks; the HDF5 wrapper.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "error_text.hpp"
#include "qshard/core/error.hpp"
#include "qshard/io/hdf5.hpp"
#include "qshard/io/tokens.hpp"

namespace qshard {
namespace {

using test::error_of;

std::filesystem::path temp(const std::string& name) {
  return std::filesystem::temp_directory_path() / (name + std::to_string(std::random_device{}()));
}

TEST(Tokens, RawInt32RoundTripAndShapeErrors) {
  const auto path = temp("tokens.i32");
  std::vector<std::int32_t> ids(3 * 5);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::int32_t>(i * 7 % 11);
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(ids.data()), 60);
  const TokenSet set = read_tokens_i32(path, 5);
  EXPECT_EQ(set.rows, 3);
  EXPECT_EQ(set.ids, ids);
  EXPECT_EQ(set.row(2)[4], ids[14]);
  EXPECT_NE(error_of([&] { read_tokens_i32(path, 4); }).find("row length 4"), std::string::npos);
  std::ofstream(path, std::ios::binary | std::ios::app).write("xy", 2);
  EXPECT_NE(error_of([&] { read_tokens_i32(path, 5); }).find("multiple of 4"), std::string::npos);
  std::filesystem::remove(path);
}

// A raw file has no row length of its own; a name like calib_128x256.i32 declares one when the
// size agrees (issue 14: --seq_len other than the rows re-chunked them silently).
TEST(Tokens, RowLengthDeclaredByARawFileName) {
  const auto dir = temp("tokens-named");
  std::filesystem::create_directories(dir);
  const std::vector<std::int32_t> ids(3 * 8, 1);
  const auto write = [&](const std::string& name, std::size_t count) {
    std::ofstream(dir / name, std::ios::binary)
        .write(reinterpret_cast<const char*>(ids.data()), static_cast<std::streamsize>(4 * count));
    return (dir / name).string();
  };
  EXPECT_EQ(row_length_in_name(write("calib_3x8.i32", 24)), 8);
  EXPECT_EQ(row_length_in_name(write("3x8.i32", 24)), 8);
  EXPECT_EQ(row_length_in_name(write("calib_3x8.i32", 16)), std::nullopt);  // size disagrees
  EXPECT_EQ(row_length_in_name(write("calib.i32", 24)), std::nullopt);
  EXPECT_EQ(row_length_in_name(write("calib_3x8x.i32", 24)), std::nullopt);
  EXPECT_EQ(row_length_in_name(dir / "absent_3x8.i32"), std::nullopt);
  std::filesystem::remove_all(dir);
}

TEST(Tokens, Hdf5DatasetAndSpec) {
  const auto path = temp("tokens") += ".h5";
  TokenSet set{4, 6, {}};
  for (int i = 0; i < 24; ++i) set.ids.push_back(i % 9);
  write_tokens_hdf5(path, "calib", set);
  const TokenSet back = read_tokens_hdf5(path, "calib");
  EXPECT_EQ(back.rows, 4);
  EXPECT_EQ(back.cols, 6);
  EXPECT_EQ(back.ids, set.ids);
  EXPECT_EQ(read_tokens(path.string() + ":calib", 0).ids, set.ids);
  EXPECT_NE(error_of([&] { read_tokens(path.string() + ":nope", 0); }).find("nope"),
            std::string::npos);
  EXPECT_EQ(hash_tokens(back), hash_tokens(set));
  std::filesystem::remove(path);
}

TEST(Tokens, SeededWindowsAreReproducibleAndInRange) {
  std::vector<std::int32_t> stream(1000);
  for (std::size_t i = 0; i < stream.size(); ++i) stream[i] = static_cast<std::int32_t>(i);
  const TokenSet a = sample_windows(stream, 16, 32, 42), b = sample_windows(stream, 16, 32, 42),
                 c = sample_windows(stream, 16, 32, 43);
  EXPECT_EQ(a.ids, b.ids);
  EXPECT_NE(a.ids, c.ids);
  for (std::int64_t r = 0; r < a.rows; ++r)
    for (std::int64_t t = 1; t < a.cols; ++t)
      ASSERT_EQ(a.row(r)[t], a.row(r)[t - 1] + 1);  // contiguous windows
  EXPECT_THROW(sample_windows(stream, 1, 2000, 0), Error);
}

TEST(Tokens, VocabularyCheckNamesTheOffender) {
  TokenSet set{2, 3, {1, 2, 3, 4, 700, 5}};
  const std::string e = error_of([&] { check_vocab(set, 512, "calib.i32"); });
  EXPECT_NE(e.find("700"), std::string::npos);
  EXPECT_NE(e.find("row 1, column 1"), std::string::npos);
  EXPECT_NE(e.find("calib.i32"), std::string::npos);
  set.ids[4] = -1;
  EXPECT_NE(error_of([&] { check_vocab(set, 512, "x"); }).find("-1"), std::string::npos);
}

TEST(Hdf5, DatasetsAttributesAndErrors) {
  h5::silence_library_errors();
  const auto path = temp("h5") += ".h5";
  {
    const h5::File file = h5::File::create(path);
    const h5::Group g = file.root().create_group("a").create_group("b");
    const std::vector<float> values = {1.5f, -2.0f, 3.25f, 0.0f, 1e-8f, 7.0f};
    g.write<float>("x", values, {2, 3});
    g.write<std::uint16_t>("y", std::vector<std::uint16_t>{1, 65535}, {2});
    g.set_attr("name", std::string("qshard"));
    g.set_attr("count", std::int64_t{-42});
    g.set_attr("ratio", 0.25);
    g.set_attr("list", std::vector<double>{1.0, 2.0, 3.0});
  }
  const h5::File file = h5::File::open_read(path);
  const h5::Group g = file.root().open_group("a/b");
  std::vector<std::int64_t> shape;
  EXPECT_EQ(g.read<float>("x", &shape),
            (std::vector<float>{1.5f, -2.0f, 3.25f, 0.0f, 1e-8f, 7.0f}));
  EXPECT_EQ(shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(g.read<std::uint16_t>("y")[1], 65535);
  EXPECT_EQ(g.attr_string("name"), "qshard");
  EXPECT_EQ(g.attr_int("count"), -42);
  EXPECT_EQ(g.attr_double("ratio"), 0.25);
  EXPECT_EQ(g.attr_doubles("list"), (std::vector<double>{1.0, 2.0, 3.0}));
  EXPECT_EQ(g.children(), (std::vector<std::string>{"x", "y"}));
  EXPECT_TRUE(file.root().is_group("a"));
  EXPECT_FALSE(g.is_group("x"));
  EXPECT_NE(error_of([&] { g.read<float>("z"); }).find("/a/b/z"), std::string::npos);
  EXPECT_NE(error_of([&] { g.attr_int("nope"); }).find("nope"), std::string::npos);
  EXPECT_NE(
      error_of([&] { h5::File::open_read(path.string() + ".missing"); }).find("does not exist"),
      std::string::npos);
  EXPECT_NE(error_of([&] { h5::File::create("/dev/null/x.h5"); }).find("/dev/null/x.h5"),
            std::string::npos);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace qshard
