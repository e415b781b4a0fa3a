// Bits per weight, model size and the checkpoint hash on a small hand-written checkpoint layout.
#include <gtest/gtest.h>

#include "qshard/core/error.hpp"
#include "qshard/io/checkpoint.hpp"
#include "qshard/io/hdf5.hpp"
#include "qshard/sweep/checkpoint_stats.hpp"
#include "sweep_test_support.hpp"

namespace qshard {
namespace {
namespace fs = std::filesystem;

// One layer: a 4-bit group-32 module of 64 inputs × 16 outputs, a float module, a norm; a model
// tensor. `code` is the first packed word, `seconds` an attribute (not part of the hash).
void write_layout(const fs::path& path, std::int32_t code, double seconds) {
  const h5::File file = h5::File::create(path);
  const h5::Group root = file.root();
  const h5::Group model = root.create_group("model");
  const std::vector<float> embed(10 * 8, 0.5f);
  model.write<float>("model.embed_tokens.weight", embed, {10, 8});
  const h5::Group layer = root.create_group("layers").create_group("00000");
  layer.set_attr("seconds", seconds);
  const std::vector<float> norm(8, 1.0f);
  layer.write<float>("input_layernorm.weight", norm, {1, 8});
  const h5::Group q = layer.create_group("q_proj");
  q.set_attr("method", std::string("gptq"));
  q.set_attr("bits", std::int64_t{4});
  q.set_attr("in_features", std::int64_t{64});
  q.set_attr("out_features", std::int64_t{16});
  std::vector<std::int32_t> qweight(8 * 16, 0x12345678);  // 64·4/32 = 8 words per output
  qweight[0] = code;
  q.write<std::int32_t>("qweight", qweight, {8, 16});
  q.write<std::int32_t>("qzeros", std::vector<std::int32_t>(2 * 2, 0), {2, 2});
  q.write<std::uint16_t>("scales", std::vector<std::uint16_t>(2 * 16, 0x3c00), {2, 16});
  std::vector<std::int32_t> g_idx(64);
  for (int c = 0; c < 64; ++c) g_idx[static_cast<std::size_t>(c)] = c / 32;
  q.write<std::int32_t>("g_idx", g_idx, {64});
  const h5::Group k = layer.create_group("k_proj");
  k.set_attr("method", std::string("none"));
  k.write<float>("weight", std::vector<float>(4 * 8, 0.25f), {4, 8});
}

TEST(CheckpointStats, CountsStoredBytesAndBitsPerWeight) {
  test::ScratchDir dir("qshard-stats");
  write_layout(dir / "a.h5", 1, 1.0);
  const CheckpointStats stats = checkpoint_stats(dir / "a.h5");
  const std::int64_t quantized = 8 * 16 * 4 + 2 * 2 * 4 + 2 * 16 * 2 + 64 * 4;  // 512+16+64+256
  EXPECT_EQ(stats.quantized_bytes, quantized);
  EXPECT_EQ(stats.quantized_weights, 64 * 16);
  EXPECT_DOUBLE_EQ(stats.bits_per_weight(), 8.0 * 848 / 1024);
  EXPECT_EQ(stats.model_bytes, quantized + 80 * 4 + 8 * 4 + 32 * 4);
  EXPECT_DOUBLE_EQ(CheckpointStats{}.bits_per_weight(), 0.0);
}

// A one-layer checkpoint as the writer makes it: every module 4-bit group 4 over 8 × 8, its
// first code `code`; `seconds` an attribute (not part of the hash).
void write_checkpoint(const fs::path& path, std::uint8_t code, double seconds) {
  LayerRecord layer;
  layer.seconds = seconds;
  layer.input_norm = MatrixF(1, 8, 1.0f);
  layer.post_norm = MatrixF(1, 8, 1.0f);
  for (const Linear linear : kAllLinears) {
    ModuleRecord m;
    m.module = linear;
    m.weight.bits = 4;
    m.weight.group_size = 4;
    m.weight.codes = Matrix<std::uint8_t>(8, 8, 3);
    m.weight.codes(0, 0) = code;
    m.weight.scales = MatrixF(8, 2, 0.5f);
    m.weight.zeros = Matrix<std::int32_t>(8, 2, 8);
    m.weight.g_idx = {0, 0, 0, 0, 1, 1, 1, 1};
    layer.modules.push_back(std::move(m));
  }
  const fs::path part = path.string() + ".layer";
  write_layer_file(part, ModelConfig{}, layer, DType::F32);
  CheckpointWriter writer(path);
  writer.root().set_attr("layers", std::int64_t{1});
  writer.add_layer_file(part, 0);
  writer.commit();
}

TEST(CheckpointHash, DependsOnStoredTensorsOnly) {
  test::ScratchDir dir("qshard-hash");
  write_checkpoint(dir / "a.h5", 1, 1.0);
  write_checkpoint(dir / "same.h5", 1, 99.0);  // another wall time: same tensors
  write_checkpoint(dir / "other.h5", 2, 1.0);  // one code differs
  const std::uint64_t a = hash_quantized_tensors(dir / "a.h5");
  EXPECT_EQ(a, hash_quantized_tensors(dir / "same.h5"));
  EXPECT_NE(a, hash_quantized_tensors(dir / "other.h5"));
  EXPECT_EQ(a, hash_quantized_tensors(dir / "a.h5"));
  { const h5::File file = h5::File::create(dir / "empty.h5"); }
  EXPECT_THROW(hash_quantized_tensors(dir / "empty.h5"), Error);
  EXPECT_THROW(hash_quantized_tensors(dir / "missing.h5"), Error);
}

}  // namespace
}  // namespace qshard
