// Every structural problem of a safetensors file is an error naming the file and the tensor.
#include <gtest/gtest.h>

#include <cstdint>

#include "io_test_support.hpp"
#include "qshard/io/safetensors.hpp"

namespace qshard {
namespace {

using test::expect_error;
using test::TempDir;
using test::write_raw_safetensors;

class MalformedSafetensors : public ::testing::Test {
 protected:
  // Writes `header` with `data_size` bytes of data as "<name>.safetensors" and expects opening it
  // to fail with the file name and every one of `parts` in the message.
  void expect_open_error(const std::string& name, const std::string& header, std::size_t data_size,
                         std::initializer_list<std::string_view> parts) {
    const auto path = dir_ / (name + ".safetensors");
    write_raw_safetensors(path, header, data_size);
    expect_error([&] { SafetensorsFile file(path); }, {name + ".safetensors"});
    expect_error([&] { SafetensorsFile file(path); }, parts);
  }

  TempDir dir_;
};

TEST_F(MalformedSafetensors, FileShorterThanEightBytes) {
  const auto path = dir_ / "short.safetensors";
  test::write_bytes(path, "abc");
  expect_error([&] { SafetensorsFile file(path); }, {"short.safetensors", "shorter than"});
  const auto empty = dir_ / "empty.safetensors";
  test::write_bytes(empty, "");
  expect_error([&] { SafetensorsFile file(empty); }, {"empty.safetensors", "0 bytes"});
}

TEST_F(MalformedSafetensors, HeaderLengthBeyondTheFile) {
  const auto path = dir_ / "long_header.safetensors";
  write_raw_safetensors(path, "{}", 0, 1000);
  expect_error([&] { SafetensorsFile file(path); },
               {"long_header.safetensors", "header length 1000"});
  const auto huge = dir_ / "huge_header.safetensors";
  write_raw_safetensors(huge, "{}", 0, INT64_MAX);
  expect_error([&] { SafetensorsFile file(huge); }, {"huge_header.safetensors", "header length"});
}

TEST_F(MalformedSafetensors, InvalidJson) {
  expect_open_error("bad_json", R"({"w": {"dtype": "F32", )", 0, {"invalid JSON"});
  expect_open_error("not_object", R"([1, 2])", 0, {"JSON object"});
}

TEST_F(MalformedSafetensors, MissingFields) {
  expect_open_error("no_dtype", R"({"layer.w": {"shape": [1], "data_offsets": [0, 4]}})", 4,
                    {"'layer.w'", "missing 'dtype'"});
  expect_open_error("no_shape", R"({"layer.w": {"dtype": "F32", "data_offsets": [0, 4]}})", 4,
                    {"'layer.w'", "missing 'shape'"});
  expect_open_error("no_offsets", R"({"layer.w": {"dtype": "F32", "shape": [1]}})", 4,
                    {"'layer.w'", "missing 'data_offsets'"});
}

TEST_F(MalformedSafetensors, FieldsOfTheWrongType) {
  expect_open_error("entry_type", R"({"layer.w": [1, 2]})", 0, {"'layer.w'", "object"});
  expect_open_error("dtype_type",
                    R"({"layer.w": {"dtype": 4, "shape": [1], "data_offsets": [0, 4]}})", 4,
                    {"'layer.w'", "'dtype' must be a string"});
  expect_open_error("shape_type",
                    R"({"layer.w": {"dtype": "F32", "shape": "1", "data_offsets": [0, 4]}})", 4,
                    {"'layer.w'", "'shape' must be an array"});
  expect_open_error("shape_float",
                    R"({"layer.w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", 4,
                    {"'layer.w'", "'shape' must hold integers"});
  expect_open_error("offsets_type",
                    R"({"layer.w": {"dtype": "F32", "shape": [1], "data_offsets": {"a": 0}}})", 4,
                    {"'layer.w'", "'data_offsets' must be an array of two integers"});
  expect_open_error("offsets_three",
                    R"({"layer.w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}})", 8,
                    {"'layer.w'", "'data_offsets' must be an array of two integers"});
  expect_open_error("offsets_string",
                    R"({"layer.w": {"dtype": "F32", "shape": [1], "data_offsets": ["0", 4]}})", 4,
                    {"'layer.w'", "'data_offsets' must hold integers"});
  expect_open_error("offsets_negative",
                    R"({"layer.w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}})", 4,
                    {"'layer.w'", "negative offset"});
  expect_open_error("metadata_type", R"({"__metadata__": {"format": 1}})", 0,
                    {"'__metadata__'", "'format'", "string"});
}

TEST_F(MalformedSafetensors, UnsupportedDtypeNamesIt) {
  expect_open_error("fp8",
                    R"({"layer.w": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}})", 4,
                    {"'layer.w'", "F8_E4M3"});
}

TEST_F(MalformedSafetensors, OffsetsBeyondTheDataSection) {
  expect_open_error("beyond",
                    R"({"layer.w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})", 8,
                    {"'layer.w'", "beyond the data section"});
}

TEST_F(MalformedSafetensors, BeginAfterEnd) {
  expect_open_error("reversed",
                    R"({"layer.w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})", 8,
                    {"'layer.w'", "begin after end"});
}

TEST_F(MalformedSafetensors, OverlappingSpans) {
  expect_open_error("overlap",
                    R"({"a.w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                        "b.w": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                    12, {"'a.w'", "'b.w'", "overlap"});
  expect_open_error("same_span",
                    R"({"a.w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                        "b.w": {"dtype": "I32", "shape": [2], "data_offsets": [0, 8]}})",
                    8, {"'a.w'", "'b.w'", "overlap"});
}

TEST_F(MalformedSafetensors, GapsAndOutOfOrderSpansAreAccepted) {
  const auto path = dir_ / "gaps.safetensors";
  write_raw_safetensors(path,
                        R"({"a.w": {"dtype": "F32", "shape": [1], "data_offsets": [12, 16]},
                            "b.w": {"dtype": "U8", "shape": [0], "data_offsets": [4, 4]},
                            "c.w": {"dtype": "I8", "shape": [2], "data_offsets": [0, 2]}})",
                        16);
  const SafetensorsFile file(path);
  EXPECT_EQ(file.names(), (std::vector<std::string>{"a.w", "b.w", "c.w"}));
  EXPECT_EQ(file.view("a.w").bytes.size(), 4u);
  EXPECT_EQ(file.view("b.w").numel(), 0);
}

TEST_F(MalformedSafetensors, ShapeAndSpanDisagree) {
  expect_open_error("size_mismatch",
                    R"({"layer.w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 8]}})", 8,
                    {"'layer.w'", "[2, 3]", "12 bytes"});
}

TEST_F(MalformedSafetensors, NegativeDimension) {
  expect_open_error("negative_dim",
                    R"({"layer.w": {"dtype": "F32", "shape": [-1, 2], "data_offsets": [0, 8]}})", 8,
                    {"'layer.w'", "negative dimension"});
}

TEST_F(MalformedSafetensors, OverflowingShape) {
  expect_open_error(
      "overflow",
      R"({"layer.w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})",
      0, {"'layer.w'", "too large"});
}

TEST_F(MalformedSafetensors, DuplicateTensorNames) {
  expect_open_error("duplicate",
                    R"({"layer.w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                        "layer.w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                    8, {"duplicate tensor 'layer.w'"});
  expect_open_error("duplicate_field",
                    R"({"layer.w": {"dtype": "F32", "dtype": "F16", "shape": [1],
                                    "data_offsets": [0, 4]}})",
                    4, {"duplicate key 'dtype'", "'layer.w'"});
}

TEST_F(MalformedSafetensors, TruncatedFile) {
  const auto path = dir_ / "truncated.safetensors";
  write_raw_safetensors(path,
                        R"({"a.w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                            "z.w": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}})",
                        24);
  EXPECT_NO_THROW(SafetensorsFile file(path));
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 3);
  expect_error([&] { SafetensorsFile file(path); },
               {"truncated.safetensors", "'z.w'", "truncated"});
}

TEST_F(MalformedSafetensors, AbsentTensorAndMissingFile) {
  const auto path = dir_ / "one.safetensors";
  write_raw_safetensors(path, R"({"a.w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})",
                        4);
  const SafetensorsFile file(path);
  expect_error([&] { file.view("b.w"); }, {"one.safetensors", "'b.w'"});
  expect_error([&] { SafetensorsFile missing(dir_ / "nothing.safetensors"); },
               {"nothing.safetensors"});
}

}  // namespace
}  // namespace qshard
