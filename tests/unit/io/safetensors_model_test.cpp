// SafetensorsModel: single files and sharded directories with an index, and their errors.
#include <gtest/gtest.h>

#include "io_test_support.hpp"
#include "qshard/io/safetensors.hpp"

namespace qshard {
namespace {

using test::expect_error;
using test::TempDir;

class ShardedModel : public ::testing::Test {
 protected:
  ShardedModel()
      : a_(Tensor::from_f32(std::vector<float>{1, 2, 3, 4}, {2, 2})),
        b_(Tensor::from_f32(std::vector<float>{5, 6}, {2}, DType::BF16)),
        c_(Tensor::from_f32(std::vector<float>{7, 8, 9}, {3}, DType::F16)) {}

  void write_shards() {
    write_safetensors(dir_ / "model-00001-of-00002.safetensors", {{"a", &a_}, {"b", &b_}});
    write_safetensors(dir_ / "model-00002-of-00002.safetensors", {{"c", &c_}});
  }
  void write_index(const std::string& weight_map) {
    test::write_bytes(dir_ / "model.safetensors.index.json",
                      R"({"metadata": {"total_size": 18}, "weight_map": )" + weight_map + "}");
  }
  static constexpr const char* kGoodMap =
      R"({"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
          "c": "model-00002-of-00002.safetensors"})";

  TempDir dir_;
  Tensor a_, b_, c_;
};

TEST_F(ShardedModel, ReadsTensorsThroughTheIndex) {
  write_shards();
  write_index(kGoodMap);
  const SafetensorsModel model(dir_.path());
  EXPECT_EQ(model.directory(), dir_.path());
  EXPECT_EQ(model.names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(model.contains("c"));
  EXPECT_FALSE(model.contains("d"));
  EXPECT_EQ(model.file_of("c").filename(), "model-00002-of-00002.safetensors");
  EXPECT_EQ(model.view("a").to_f32(), a_.to_f32());
  EXPECT_EQ(model.view("b").dtype, DType::BF16);
  EXPECT_EQ(model.view("c").to_f32(), c_.to_f32());
  EXPECT_NO_THROW(model.check_all());
  expect_error([&] { model.view("d"); }, {"'d'"});

  const SafetensorsModel moved(SafetensorsModel(dir_.path()));
  EXPECT_EQ(moved.view("b").to_f32(), b_.to_f32());
}

TEST_F(ShardedModel, MissingShardFileIsNamed) {
  write_safetensors(dir_ / "model-00001-of-00002.safetensors", {{"a", &a_}, {"b", &b_}});
  write_index(kGoodMap);
  expect_error([&] { SafetensorsModel model(dir_.path()); },
               {"model-00002-of-00002.safetensors", "does not exist", "'c'"});
}

TEST_F(ShardedModel, ListedTensorMissingFromItsShard) {
  write_shards();
  write_index(R"({"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
                  "c": "model-00002-of-00002.safetensors", "d": "model-00002-of-00002.safetensors"})");
  const SafetensorsModel model(dir_.path());
  EXPECT_EQ(model.view("a").numel(), 4);  // the first shard is sound
  expect_error([&] { model.view("d"); },
               {"'d'", "model-00002-of-00002.safetensors", "missing from it"});
  expect_error([&] { model.check_all(); }, {"'d'", "missing from it"});
}

TEST_F(ShardedModel, TensorPresentInTwoShards) {
  write_safetensors(dir_ / "model-00001-of-00002.safetensors", {{"a", &a_}, {"b", &b_}});
  write_safetensors(dir_ / "model-00002-of-00002.safetensors", {{"c", &c_}, {"a", &a_}});
  write_index(kGoodMap);
  const SafetensorsModel model(dir_.path());
  expect_error([&] { model.check_all(); }, {"'a'", "two shards", "model-00001-of-00002.safetensors",
                                            "model-00002-of-00002.safetensors"});
}

TEST_F(ShardedModel, TensorInAShardButNotInTheIndex) {
  write_safetensors(dir_ / "model-00001-of-00002.safetensors", {{"a", &a_}, {"b", &b_}});
  write_safetensors(dir_ / "model-00002-of-00002.safetensors", {{"c", &c_}, {"extra", &a_}});
  write_index(kGoodMap);
  const SafetensorsModel model(dir_.path());
  expect_error([&] { model.check_all(); },
               {"'extra'", "not listed", "model-00002-of-00002.safetensors"});
}

TEST_F(ShardedModel, BrokenIndex) {
  write_shards();
  write_index(R"({"a": 3})");
  expect_error([&] { SafetensorsModel model(dir_.path()); },
               {"model.safetensors.index.json", "'a'"});
  test::write_bytes(dir_ / "model.safetensors.index.json", R"({"metadata": {}})");
  expect_error([&] { SafetensorsModel model(dir_.path()); },
               {"model.safetensors.index.json", "weight_map"});
  write_index(
      R"({"a": "model-00001-of-00002.safetensors", "a": "model-00001-of-00002.safetensors"})");
  expect_error([&] { SafetensorsModel model(dir_.path()); },
               {"model.safetensors.index.json", "duplicate key 'a'"});
}

TEST_F(ShardedModel, SingleFileLayouts) {
  write_safetensors(dir_ / "weights.safetensors", {{"a", &a_}});
  {  // the only *.safetensors file, whatever its name
    const SafetensorsModel model(dir_.path());
    EXPECT_EQ(model.names(), std::vector<std::string>{"a"});
    EXPECT_EQ(model.file_of("a").filename(), "weights.safetensors");
  }
  write_safetensors(dir_ / "other.safetensors", {{"b", &b_}});
  expect_error([&] { SafetensorsModel model(dir_.path()); }, {"exactly one *.safetensors"});
  write_safetensors(dir_ / "model.safetensors", {{"c", &c_}});
  const SafetensorsModel model(dir_.path());  // model.safetensors wins
  EXPECT_EQ(model.names(), std::vector<std::string>{"c"});
}

TEST(SafetensorsModelErrors, MissingDirectoryAndEmptyDirectory) {
  const TempDir dir;
  expect_error([&] { SafetensorsModel model(dir / "absent"); }, {"absent", "does not exist"});
  expect_error([&] { SafetensorsModel model(dir.path()); }, {"model.safetensors"});
}

}  // namespace
}  // namespace qshard
