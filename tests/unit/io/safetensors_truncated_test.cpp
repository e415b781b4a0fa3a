// A safetensors file truncated while it is mapped (issue 14: the next read died of SIGBUS with no
// message): the size is checked again before each tensor is handed out, and the error names the
// file.
#include <gtest/gtest.h>

#include <filesystem>

#include "io_test_support.hpp"
#include "qshard/io/safetensors.hpp"

namespace qshard {
namespace {

TEST(SafetensorsTruncated, ViewAfterTruncationNamesTheFile) {
  const test::TempDir dir;
  const std::vector<float> values(64 * 1024, 0.5f);
  const Tensor a = Tensor::from_f32(values, {256, 256});
  const Tensor b = Tensor::from_f32(values, {256, 256});
  write_safetensors(dir / "model.safetensors", {{"a", &a}, {"b", &b}});
  const SafetensorsModel model(dir.path());
  EXPECT_EQ(model.view("b").to_f32()[0], 0.5f);
  std::filesystem::resize_file(dir / "model.safetensors", 4096);
  test::expect_error([&] { model.view("b"); },
                     {(dir / "model.safetensors").string(), "truncated while in use"});
  test::expect_error([&] { model.view("a"); }, {"model.safetensors", "was"});
}

}  // namespace
}  // namespace qshard
