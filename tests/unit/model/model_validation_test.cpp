// Whole-model validation when a Hugging Face directory is opened (issue 14): every tensor the
// config implies present, shaped and floating point, nothing unaccounted for, the config's sizes
// bounded by what the files hold; all before any layer is read.
#include <gtest/gtest.h>

#include <functional>
#include <map>

#include "error_text.hpp"
#include "qshard/core/error.hpp"
#include "qshard/model/decoder.hpp"
#include "qshard/model/weight_source.hpp"
#include "tiny_model.hpp"

namespace qshard {
namespace {

using test::error_of;
using test::has;

// Writes `m`, then lets `edit` change the stored tensors (dtype, shape, extra names) before the
// file is written again.
void write_edited(const test::TinyModel& m, const std::filesystem::path& dir,
                  const std::function<void(std::map<std::string, Tensor>&)>& edit) {
  test::write_model(m, dir);
  std::map<std::string, Tensor> tensors;
  {
    const SafetensorsFile file(dir / "model.safetensors");
    for (const std::string& name : file.names()) tensors[name] = Tensor::copy_of(file.view(name));
  }
  edit(tensors);
  std::vector<NamedTensor> named;
  for (const auto& [name, tensor] : tensors) named.push_back({name, &tensor});
  write_safetensors(dir / "model.safetensors", named);
}

TEST(ModelValidation, MissingTensorsAreFoundWhenTheModelOpens) {
  for (const std::string& name : {linear_weight_name(1, Linear::Up), std::string(kFinalNormName),
                                  std::string(kLmHeadName), input_norm_name(0)}) {
    test::TinyModel m = test::make_tiny(11);
    m.tensors.erase(name);
    const test::TempDir dir("qshard-validate-missing");
    test::write_model(m, dir.path());
    const std::string e = error_of([&] { open_hf_model(dir.path()); });
    EXPECT_TRUE(has(e, dir.path().string())) << e;
    EXPECT_TRUE(has(e, "'" + name + "' is missing")) << e;
    if (name == kLmHeadName) EXPECT_TRUE(has(e, "tie_word_embeddings")) << e;
  }
}

TEST(ModelValidation, TiedModelsMayStoreTheHeadOrNot) {
  test::TinyModel m = test::make_tiny(12);
  m.config.tie_word_embeddings = true;
  const test::TempDir with_head("qshard-validate-tied");
  test::write_model(m, with_head.path());
  EXPECT_NO_THROW(open_hf_model(with_head.path()));
  m.tensors.erase(std::string(kLmHeadName));
  const test::TempDir without_head("qshard-validate-tied");
  test::write_model(m, without_head.path());
  EXPECT_NO_THROW(open_hf_model(without_head.path()));
}

TEST(ModelValidation, IntegerWeightsAreRefusedNamingTensorAndFile) {
  const test::TinyModel m = test::make_tiny(13);
  const std::string name = linear_weight_name(1, Linear::Gate);
  const test::TempDir dir("qshard-validate-int");
  write_edited(m, dir.path(), [&](std::map<std::string, Tensor>& tensors) {
    tensors[name] = Tensor(DType::I32, tensors[name].shape());
  });
  const std::string e = error_of([&] { open_hf_model(dir.path()); });
  EXPECT_TRUE(has(e, (dir.path() / "model.safetensors").string())) << e;
  EXPECT_TRUE(has(e, name)) << e;
  EXPECT_TRUE(has(e, "I32")) << e;
}

TEST(ModelValidation, TransposedTensorIsFoundWhenTheModelOpens) {
  const test::TinyModel m = test::make_tiny(14);
  const std::string name = linear_weight_name(1, Linear::Down);  // [32, 48]
  const test::TempDir dir("qshard-validate-shape");
  write_edited(m, dir.path(), [&](std::map<std::string, Tensor>& tensors) {
    const std::vector<float> values = tensors[name].to_f32();
    tensors[name] = Tensor::from_f32(values, {48, 32});
  });
  const std::string e = error_of([&] { open_hf_model(dir.path()); });
  EXPECT_TRUE(has(e, name)) << e;
  EXPECT_TRUE(has(e, "[48, 32]")) << e;
  EXPECT_TRUE(has(e, "[32, 48]")) << e;
}

TEST(ModelValidation, MoreLayersInTheFilesNeedAllowExtraTensors) {
  test::TinyModel m = test::make_tiny(15);
  m.config.num_hidden_layers = 1;  // the files hold 2
  const test::TempDir dir("qshard-validate-extra-layers");
  test::write_model(m, dir.path());
  const std::string e = error_of([&] { open_hf_model(dir.path()); });
  EXPECT_TRUE(has(e, "num_hidden_layers is 1")) << e;
  EXPECT_TRUE(has(e, "2 decoder layers")) << e;
  EXPECT_TRUE(has(e, "--allow-extra-tensors")) << e;
  // Allowed: the extra layer is ignored (a truncated model, as asked for).
  const auto source = open_hf_model(dir.path(), {.allow_extra_tensors = true});
  EXPECT_EQ(source->config().num_hidden_layers, 1);
  EXPECT_FALSE(source->contains(linear_weight_name(1, Linear::Q)));
  EXPECT_EQ(LayerWeights::load(*source, 0)[Linear::Q].rows(), 32);
}

TEST(ModelValidation, UnknownTensorsAndUndeclaredBiasesAreUnaccounted) {
  test::TinyModel m = test::make_tiny(16);
  m.tensors["model.extra_projection.weight"] = {{1.0, 2.0}};
  const test::TempDir dir("qshard-validate-unknown");
  test::write_model(m, dir.path());
  const std::string e = error_of([&] { open_hf_model(dir.path()); });
  EXPECT_TRUE(has(e, "model.extra_projection.weight")) << e;
  EXPECT_TRUE(has(e, "--allow-extra-tensors")) << e;
  EXPECT_NO_THROW(open_hf_model(dir.path(), {.allow_extra_tensors = true}));

  // Biases the config does not declare would change the model silently: unaccounted too, and
  // ignored when allowed.
  test::TinyModel no_bias = test::make_tiny(17);
  no_bias.config.attention_bias = false;
  no_bias.config.o_proj_bias = false;
  const test::TempDir bias_dir("qshard-validate-bias");
  test::write_model(no_bias, bias_dir.path());
  const std::string b = error_of([&] { open_hf_model(bias_dir.path()); });
  EXPECT_TRUE(has(b, linear_bias_name(0, Linear::Q))) << b;
  const auto source = open_hf_model(bias_dir.path(), {.allow_extra_tensors = true});
  EXPECT_FALSE(source->contains(linear_bias_name(0, Linear::Q)));
  EXPECT_TRUE(LayerWeights::load(*source, 0).bias[0].empty());
}

TEST(ModelValidation, ConfigLayersAreBoundedByTheFiles) {
  for (const std::int64_t layers : {3, 4000}) {
    test::TinyModel m = test::make_tiny(18);
    m.config.num_hidden_layers = layers;
    const test::TempDir dir("qshard-validate-layers");
    test::write_model(m, dir.path());
    const std::string e = error_of([&] { open_hf_model(dir.path()); });
    EXPECT_TRUE(has(e, "num_hidden_layers is " + std::to_string(layers))) << e;
    EXPECT_TRUE(has(e, "hold 2 decoder layers")) << e;
  }
}

}  // namespace
}  // namespace qshard
