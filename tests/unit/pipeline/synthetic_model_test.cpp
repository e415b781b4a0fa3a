// Synthetic models: deterministic, random-access weights with the statistics GPTQ cares about.
#include <gtest/gtest.h>

#include <cmath>

#include "qshard/model/synthetic_source.hpp"

namespace qshard {
namespace {

// The embedding is N(0, 1) per element (rounded to bf16): its moments and tail mass match the
// normal distribution's within what 131,072 samples allow.
TEST(SyntheticModel, EmbeddingValuesAreStandardNormal) {
  const auto source = open_synthetic_model("tiny", 3);
  const MatrixF e = source->load(std::string(kEmbedName));
  ASSERT_EQ(e.size(), 1024u * 128u);
  double sum = 0.0, squares = 0.0, fourth = 0.0;
  std::size_t beyond_two = 0;
  for (const float v : e.values()) {
    sum += v;
    squares += static_cast<double>(v) * v;
    fourth += std::pow(static_cast<double>(v), 4);
    beyond_two += std::abs(v) > 2.0f ? 1 : 0;
  }
  const auto n = static_cast<double>(e.size());
  EXPECT_NEAR(sum / n, 0.0, 0.015);                                 // sd of the mean: 0.0028
  EXPECT_NEAR(squares / n, 1.0, 0.02);                              // sd: 0.004
  EXPECT_NEAR(fourth / n, 3.0, 0.15);                               // kurtosis of a normal
  EXPECT_NEAR(static_cast<double>(beyond_two) / n, 0.0455, 0.004);  // P(|x| > 2)
}

TEST(SyntheticModel, PresetsHaveTheRealShapes) {
  const ModelConfig c = synthetic_config("llama3-70b");
  EXPECT_EQ(c.hidden_size, 8192);
  EXPECT_EQ(c.intermediate_size, 28672);
  EXPECT_EQ(c.num_hidden_layers, 80);
  EXPECT_EQ(c.kv_dim(), 1024);
  EXPECT_EQ(synthetic_config("llama2-7b").intermediate_size, 11008);
  EXPECT_EQ(synthetic_config("llama3-405b").hidden_size, 16384);
  EXPECT_THROW(synthetic_config("gpt5"), Error);
}

TEST(SyntheticModel, WeightsAreDeterministicPerSeedAndName) {
  const auto a = open_model("synthetic:tiny", 7), b = open_model("synthetic:tiny", 7),
             c = open_model("synthetic:tiny", 8);
  const std::string name = linear_weight_name(2, Linear::Gate);
  const MatrixF wa = a->load(name), wb = b->load(name), wc = c->load(name);
  EXPECT_EQ(wa, wb);
  EXPECT_NE(wa, wc);
  EXPECT_NE(wa, a->load(linear_weight_name(3, Linear::Gate)));
  EXPECT_EQ(wa.rows(), a->config().intermediate_size);
  EXPECT_EQ(wa.cols(), a->config().hidden_size);
  EXPECT_FALSE(a->contains(std::string(kLmHeadName)) && a->config().tie_word_embeddings);
  EXPECT_THROW(a->load("model.layers.99.mlp.up_proj.weight"), Error);
}

TEST(SyntheticModel, HasPerRowScalesAndLargeInputChannels) {
  const auto model = open_model("synthetic:tiny", 0);
  const MatrixF w = model->load(linear_weight_name(0, Linear::Up));
  // Row norms vary (log-normal scales); a few columns are ~4x larger than the rest.
  std::vector<double> rows(static_cast<std::size_t>(w.rows())),
      cols(static_cast<std::size_t>(w.cols()));
  for (std::int64_t r = 0; r < w.rows(); ++r)
    for (std::int64_t c = 0; c < w.cols(); ++c) {
      rows[static_cast<std::size_t>(r)] += double(w(r, c)) * w(r, c);
      cols[static_cast<std::size_t>(c)] += double(w(r, c)) * w(r, c);
    }
  const auto [rmin, rmax] = std::minmax_element(rows.begin(), rows.end());
  EXPECT_GT(*rmax / *rmin, 2.0);
  std::vector<double> sorted = cols;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted[sorted.size() / 2];
  EXPECT_GT(sorted.back() / median, 8.0);  // a column scaled x4 has ~16x the energy
  for (const float v : w.values()) ASSERT_TRUE(std::isfinite(v));
}

}  // namespace
}  // namespace qshard
