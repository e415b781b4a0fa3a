// The Hugging Face weight source: tied embeddings, errors naming the directory and tensor for
// missing, misshapen or non-finite tensors; in-memory overrides.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>

#include "error_text.hpp"
#include "qshard/core/error.hpp"
#include "qshard/model/decoder.hpp"
#include "qshard/model/override_source.hpp"
#include "qshard/model/weight_source.hpp"
#include "tiny_model.hpp"

namespace qshard {
namespace {

using test::error_of;
using test::has;

TEST(HfSource, TiedHeadIsTheEmbedding) {
  test::TinyModel m = test::make_tiny(1);
  m.config.tie_word_embeddings = true;
  m.tensors.erase(std::string(kLmHeadName));
  const test::TempDir dir("qshard-tied");
  test::write_model(m, dir.path());
  const auto source = open_hf_model(dir.path());
  EXPECT_TRUE(source->contains(std::string(kLmHeadName)));
  const MatrixF head = source->load(std::string(kLmHeadName));
  EXPECT_EQ(head, source->load(std::string(kEmbedName)));
  EXPECT_EQ(head.rows(), 64);
  EXPECT_EQ(head.cols(), 32);
}

TEST(HfSource, MissingTensorNamesDirectoryAndTensor) {
  test::TinyModel m = test::make_tiny(2);
  const std::string name = linear_weight_name(1, Linear::Up);
  m.tensors.erase(name);
  const test::TempDir dir("qshard-missing");
  test::write_model(m, dir.path());
  // Found when the model opens (model_validation_test.cpp has the other cases).
  const std::string e = error_of([&] { open_hf_model(dir.path()); });
  EXPECT_TRUE(has(e, dir.path().string())) << e;
  EXPECT_TRUE(has(e, name)) << e;
  const test::TempDir whole("qshard-missing");
  test::write_model(test::make_tiny(2), whole.path());
  const auto source = open_hf_model(whole.path());
  EXPECT_TRUE(has(error_of([&] { source->load(std::string(kLmHeadName) + "x"); }), "lm_head"));
}

TEST(HfSource, WrongShapeNamesTensorAndBothShapes) {
  test::TinyModel m = test::make_tiny(3);
  const std::string k = linear_weight_name(0, Linear::K);
  m.tensors[k].pop_back();  // [15, 32] where the config implies kv_dim 16
  const std::string norm = post_attention_norm_name(1);
  m.tensors[norm][0].push_back(1.0);  // [33]
  const test::TempDir dir("qshard-shape");
  test::write_model(m, dir.path());
  // Found when the model opens, the first in name order (the norm of layer 1 sorts later).
  const std::string e = error_of([&] { open_hf_model(dir.path()); });
  EXPECT_TRUE(has(e, dir.path().string())) << e;
  EXPECT_TRUE(has(e, k)) << e;
  EXPECT_TRUE(has(e, "[15, 32]")) << e;
  EXPECT_TRUE(has(e, "[16, 32]")) << e;
  m.tensors[k] = test::make_tiny(3).tensors[k];
  const test::TempDir norm_dir("qshard-shape");
  test::write_model(m, norm_dir.path());
  EXPECT_TRUE(has(error_of([&] { open_hf_model(norm_dir.path()); }), "[32]"));
}

TEST(HfSource, NonFiniteWeightNamesTheTensor) {
  test::TinyModel m = test::make_tiny(4);
  const std::string down = linear_weight_name(0, Linear::Down);
  m.tensors[down][3][5] = std::numeric_limits<double>::quiet_NaN();
  const std::string bias = linear_bias_name(1, Linear::V);
  m.tensors[bias][0][2] = std::numeric_limits<double>::infinity();
  const test::TempDir dir("qshard-nan");
  test::write_model(m, dir.path());
  const auto source = open_hf_model(dir.path());
  const std::string e = error_of([&] { source->load(down); });
  EXPECT_TRUE(has(e, down)) << e;
  EXPECT_TRUE(has(e, "non-finite")) << e;
  EXPECT_TRUE(has(e, (dir.path() / "model.safetensors").string())) << e;  // the file
  EXPECT_TRUE(has(e, "row 3, column 5")) << e;
  // Loaded as a layer, the error names the layer and module too.
  EXPECT_TRUE(has(error_of([&] { LayerWeights::load(*source, 0); }), "layer 0: down_proj: ")) << e;
  EXPECT_TRUE(has(error_of([&] { source->load(bias); }), bias));
}

TEST(HfSource, MissingDirectoryOrConfig) {
  const test::TempDir dir("qshard-empty");
  EXPECT_TRUE(has(error_of([&] { open_hf_model(dir.path() / "nope"); }), "does not exist"));
  EXPECT_TRUE(has(error_of([&] { open_hf_model(dir.path()); }), "config.json"));
}

TEST(OverrideSource, ReplacesOnlyTheGivenTensors) {
  const test::TinyModel m = test::make_tiny(5);
  const test::TempDir dir("qshard-override");
  test::write_model(m, dir.path());
  const auto base = open_hf_model(dir.path());
  const std::string q = linear_weight_name(0, Linear::Q);
  const MatrixF zeros(32, 32, 0.0f);
  const auto replaced = with_overrides(*base, {{q, zeros}});
  EXPECT_EQ(replaced->load(q), zeros);
  EXPECT_EQ(base->load(q)(0, 0), static_cast<float>(m.tensors.at(q)[0][0]));
  const std::string k = linear_weight_name(0, Linear::K);
  EXPECT_EQ(replaced->load(k), base->load(k));
  EXPECT_EQ(replaced->config().hidden_size, 32);
  EXPECT_TRUE(has(error_of([&] {
                    with_overrides(*base, {{"model.layers.9.mlp.up_proj.weight", zeros}});
                  }),
                  "model.layers.9.mlp.up_proj.weight"));
}

}  // namespace
}  // namespace qshard
