// write_safetensors and SafetensorsFile: what is written is read back bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "io_test_support.hpp"
#include "qshard/io/safetensors.hpp"

namespace qshard {
namespace {

using test::TempDir;

std::vector<float> ramp(std::size_t n, float scale) {
  std::vector<float> values(n);
  for (std::size_t i = 0; i < n; ++i) values[i] = scale * (static_cast<float>(i) - 3.3f);
  return values;
}

bool same_bytes(std::span<const std::byte> a, std::span<const std::byte> b) {
  // Not memcmp: an empty tensor's span may hold a null pointer (UB for memcmp, even of 0 bytes).
  return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

std::uint64_t header_length(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char bytes[8] = {};
  in.read(reinterpret_cast<char*>(bytes), 8);
  std::uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | bytes[i];
  return length;
}

TEST(SafetensorsRoundTrip, Bf16Fp16Fp32AndMetadata) {
  const TempDir dir;
  const Tensor f32 = Tensor::from_f32(ramp(12, 0.37f), {3, 4}, DType::F32);
  const Tensor f16 = Tensor::from_f32(ramp(5, 1.1f), {5}, DType::F16);
  const Tensor bf16 = Tensor::from_f32(ramp(6, -2.7f), {2, 1, 3}, DType::BF16);
  const Tensor empty(DType::F32, {0, 4});
  const auto path = dir / "model.safetensors";
  write_safetensors(path, {{"z.f32", &f32}, {"a.f16", &f16}, {"m.bf16", &bf16}, {"e", &empty}},
                    {{"format", "pt"}, {"note", "round trip"}});

  EXPECT_FALSE(std::filesystem::exists(path.string() + ".tmp"));
  EXPECT_EQ(header_length(path) % 8, 0u);
  const SafetensorsFile file(path);
  EXPECT_EQ(file.path(), path);
  EXPECT_EQ(file.names(), (std::vector<std::string>{"a.f16", "e", "m.bf16", "z.f32"}));
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_EQ(file.metadata().at("note"), "round trip");
  for (const auto& [name, tensor] :
       {std::pair{"z.f32", &f32}, {"a.f16", &f16}, {"m.bf16", &bf16}, {"e", &empty}}) {
    const TensorView view = file.view(name);
    EXPECT_EQ(view.dtype, tensor->dtype()) << name;
    EXPECT_EQ(view.shape, tensor->shape()) << name;
    EXPECT_TRUE(same_bytes(view.bytes, tensor->bytes())) << name;
    EXPECT_EQ(view.to_f32(), tensor->to_f32()) << name;
  }
  // Data lie in the order given: the first tensor starts the data section.
  EXPECT_EQ(file.view("z.f32").bytes.data(), file.view("a.f16").bytes.data() - f32.bytes().size());
  EXPECT_TRUE(file.contains("e"));
  EXPECT_FALSE(file.contains("missing"));
}

TEST(SafetensorsRoundTrip, MovedFileKeepsItsMapping) {
  const TempDir dir;
  const Tensor t = Tensor::from_f32(ramp(4, 1.0f), {4});
  write_safetensors(dir / "a.safetensors", {{"t", &t}});
  SafetensorsFile first(dir / "a.safetensors");
  const SafetensorsFile moved(std::move(first));
  EXPECT_EQ(moved.view("t").to_f32(), t.to_f32());
}

TEST(SafetensorsRoundTrip, OverwritesAnExistingFile) {
  const TempDir dir;
  const Tensor a = Tensor::from_f32(ramp(4, 1.0f), {4});
  const Tensor b = Tensor::from_f32(ramp(2, 2.0f), {2}, DType::BF16);
  write_safetensors(dir / "x.safetensors", {{"a", &a}});
  write_safetensors(dir / "x.safetensors", {{"b", &b}});
  const SafetensorsFile file(dir / "x.safetensors");
  EXPECT_EQ(file.names(), std::vector<std::string>{"b"});
}

TEST(SafetensorsWrite, ErrorsNameThePath) {
  const TempDir dir;
  const Tensor t = Tensor::from_f32(ramp(4, 1.0f), {4});
  const auto unwritable = dir / "no-such-dir" / "out.safetensors";
  test::expect_error([&] { write_safetensors(unwritable, {{"t", &t}}); }, {"out.safetensors"});
  EXPECT_FALSE(std::filesystem::exists(unwritable));
  test::expect_error(
      [&] {
        write_safetensors(dir / "dup.safetensors", {{"t", &t}, {"t", &t}});
      },
      {"dup.safetensors", "duplicate tensor 't'"});
  EXPECT_FALSE(std::filesystem::exists(dir / "dup.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(dir / "dup.safetensors.tmp"));
  test::expect_error(
      [&] {
        write_safetensors(dir / "null.safetensors", {{"n", nullptr}});
      },
      {"null.safetensors", "'n'"});
}

}  // namespace
}  // namespace qshard
