// The checkpoint reader refuses what a reader would index or multiply with before use: g_idx out
// of range and non-finite scales, naming the dataset.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "qshard/io/checkpoint.hpp"
#include "qshard/io/hdf5.hpp"

namespace qshard {
namespace {
namespace fs = std::filesystem;

LayerRecord layer_with(const QuantizedWeight& q) {
  LayerRecord layer;
  layer.index = 0;
  layer.input_norm = MatrixF(1, 8, 1.0f);
  layer.post_norm = MatrixF(1, 8, 1.0f);
  for (const Linear linear : kAllLinears) {
    ModuleRecord m;
    m.module = linear;
    m.weight = q;
    layer.modules.push_back(std::move(m));
  }
  return layer;
}

QuantizedWeight small_weight() {
  QuantizedWeight q;
  q.bits = 4;
  q.group_size = 4;
  q.codes = Matrix<std::uint8_t>(8, 8, 3);
  q.scales = MatrixF(8, 2, 0.5f);
  q.zeros = Matrix<std::int32_t>(8, 2, 8);
  q.g_idx = {0, 0, 0, 0, 1, 1, 1, 1};
  return q;
}

std::string read_error(const fs::path& file) {
  try {
    (void)read_layer(h5::File::open_read(file), ModelConfig{}, 0);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(CheckpointValidation, RefusesGidxOutOfRangeAndNonFiniteScales) {
  h5::silence_library_errors();
  const fs::path dir = fs::temp_directory_path() / "qshard-checkpoint-validation";
  fs::create_directories(dir);
  const fs::path file = dir / "layer.h5";
  write_layer_file(file, ModelConfig{}, layer_with(small_weight()), DType::F32);
  EXPECT_EQ(read_error(file), "");

  for (const std::int32_t bad : {2, -1, std::numeric_limits<std::int32_t>::max()}) {
    QuantizedWeight q = small_weight();
    q.g_idx[5] = bad;
    write_layer_file(file, ModelConfig{}, layer_with(q), DType::F32);
    const std::string error = read_error(file);
    EXPECT_NE(error.find("/g_idx[5] = " + std::to_string(bad)), std::string::npos) << error;
    EXPECT_NE(error.find("q_proj"), std::string::npos) << error;
  }
  for (const float bad :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    QuantizedWeight q = small_weight();
    q.scales(3, 1) = bad;
    write_layer_file(file, ModelConfig{}, layer_with(q), DType::F32);
    const std::string error = read_error(file);
    EXPECT_NE(error.find("/scales[3, 1]"), std::string::npos) << error;
    EXPECT_NE(error.find("not finite"), std::string::npos) << error;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace qshard
