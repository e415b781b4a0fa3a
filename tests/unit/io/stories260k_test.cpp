// The real stories260k checkpoint: every tensor of its README's checksum table is checked.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "qshard/io/model_config.hpp"
#include "qshard/io/safetensors.hpp"

namespace qshard {
namespace {

const std::filesystem::path kModel = QSHARD_SHARED_DIR "/models/stories260k";

struct Checksum {
  std::string name;
  Shape shape;
  double sum = 0, abs_sum = 0, first = 0;
  double sum_tolerance = 0, abs_tolerance = 0, first_tolerance = 0;
};

// Half a unit of the last printed digit, plus 1e-5 relative.
double tolerance(const std::string& printed) {
  const std::size_t dot = printed.find('.');
  const int decimals = dot == std::string::npos ? 0 : static_cast<int>(printed.size() - dot - 1);
  return 0.5 * std::pow(10.0, -decimals) + 1e-5 * std::fabs(std::stod(printed));
}

// The rows "| `name` | [a, b] | sum | abs | first |" of the README.
std::vector<Checksum> read_table(const std::filesystem::path& readme) {
  std::ifstream in(readme);
  const std::regex row(
      R"(^\|\s*`([^`]+)`\s*\|\s*\[([0-9, ]*)\]\s*\|\s*(\S+)\s*\|\s*(\S+)\s*\|\s*(\S+)\s*\|\s*$)");
  std::vector<Checksum> table;
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (!std::regex_match(line, m, row)) continue;
    Checksum c;
    c.name = m[1];
    std::istringstream dims(m[2].str());
    std::string dim;
    while (std::getline(dims, dim, ',')) c.shape.push_back(std::stoll(dim));
    c.sum = std::stod(m[3]);
    c.abs_sum = std::stod(m[4]);
    c.first = std::stod(m[5]);
    c.sum_tolerance = tolerance(m[3]);
    c.abs_tolerance = tolerance(m[4]);
    c.first_tolerance = tolerance(m[5]);
    table.push_back(c);
  }
  return table;
}

class Stories260k : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kModel / "model.safetensors")) {
      GTEST_SKIP() << "../shared/models/stories260k not found: expected " << kModel;
    }
  }
};

TEST_F(Stories260k, EveryTensorMatchesTheReadmeChecksums) {
  const std::vector<Checksum> table = read_table(kModel / "README.md");
  ASSERT_EQ(table.size(), 47u) << "the README lists 47 tensors";
  const SafetensorsModel model(kModel);
  model.check_all();
  EXPECT_EQ(model.names().size(), table.size());
  for (const Checksum& expected : table) {
    SCOPED_TRACE(expected.name);
    ASSERT_TRUE(model.contains(expected.name));
    const TensorView view = model.view(expected.name);
    EXPECT_EQ(view.dtype, DType::F32);
    EXPECT_EQ(view.shape, expected.shape);
    const std::vector<float> values = view.to_f32();
    double sum = 0, abs_sum = 0;
    for (const float v : values) {
      sum += v;
      abs_sum += std::fabs(v);
    }
    EXPECT_NEAR(sum, expected.sum, expected.sum_tolerance);
    EXPECT_NEAR(abs_sum, expected.abs_sum, expected.abs_tolerance);
    ASSERT_FALSE(values.empty());
    EXPECT_NEAR(values[0], expected.first, expected.first_tolerance);
  }
}

TEST_F(Stories260k, ConfigParses) {
  const ModelConfig c = parse_model_config(kModel / "config.json");
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 172);
  EXPECT_EQ(c.num_hidden_layers, 5);
  EXPECT_EQ(c.num_attention_heads, 8);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_position_embeddings, 512);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FALSE(c.o_proj_bias);
  EXPECT_FALSE(c.mlp_bias);
  EXPECT_TRUE(c.rope_scaling.type.empty());
  EXPECT_EQ(c.torch_dtype, DType::F32);
  EXPECT_EQ(c.q_dim(), 64);
  EXPECT_EQ(c.kv_dim(), 32);
}

}  // namespace
}  // namespace qshard
