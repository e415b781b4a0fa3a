// The printing behind qshard-inspect.
#include <gtest/gtest.h>

#include <sstream>

#include "io_test_support.hpp"
#include "qshard/io/inspect.hpp"
#include "qshard/io/safetensors.hpp"

namespace qshard {
namespace {

// One layer of a tiny tied Llama: hidden 4, 2 heads, vocabulary 6.
void write_tiny_config(const test::TempDir& dir) {
  test::write_bytes(dir / "config.json", R"({"model_type": "llama", "hidden_size": 4,
      "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
      "num_key_value_heads": 1, "vocab_size": 6, "tie_word_embeddings": true})");
}

TEST(Inspect, PrintsConfigTensorsTotalsAndMissingNames) {
  const test::TempDir dir;
  write_tiny_config(dir);
  const Tensor embed = Tensor::from_f32(std::vector<float>(24, 0.5f), {6, 4}, DType::BF16);
  const Tensor q = Tensor::from_f32(std::vector<float>(16, 1.0f), {4, 4});
  const Tensor odd = Tensor::from_f32(std::vector<float>(3, 1.0f), {3});
  write_safetensors(dir / "model.safetensors", {{"model.embed_tokens.weight", &embed},
                                                {"model.layers.0.self_attn.q_proj.weight", &q},
                                                {"extra.scale", &odd}});
  std::ostringstream out;
  inspect_model(dir.path(), out, /*list_tensors=*/true);
  const std::string text = out.str();
  for (const char* part :
       {"model_type", "llama", "num_key_value_heads", "model.embed_tokens.weight", "[6, 4]", "BF16",
        "model.safetensors", "model.layers.0.self_attn.q_proj.weight", "[4, 4]", "F32",
        "total: 3 tensors, 43 parameters, 124 bytes", "model.layers.0.mlp.down_proj.weight",
        "model.norm.weight", "extra.scale"}) {
    EXPECT_NE(text.find(part), std::string::npos) << "output lacks '" << part << "':\n" << text;
  }
  EXPECT_EQ(text.find("lm_head.weight"), std::string::npos) << "tied: lm_head is not expected";
}

TEST(Inspect, SummarisesTheTensorsByDefault) {
  const test::TempDir dir;
  write_tiny_config(dir);
  const Tensor embed = Tensor::from_f32(std::vector<float>(24, 0.5f), {6, 4}, DType::BF16);
  const Tensor q = Tensor::from_f32(std::vector<float>(16, 1.0f), {4, 4});
  write_safetensors(dir / "model.safetensors", {{"model.embed_tokens.weight", &embed},
                                                {"model.layers.0.self_attn.q_proj.weight", &q}});
  std::ostringstream out;
  inspect_model(dir.path(), out);
  const std::string text = out.str();
  for (const char* part :
       {"model_type", "total: 2 tensors, 40 parameters, 112 bytes", "BF16  1 tensors, 48 bytes",
        "F32   1 tensors, 64 bytes", "files: 1, decoder layers: 1", "--tensors",
        "model.layers.0.mlp.down_proj.weight"}) {
    EXPECT_NE(text.find(part), std::string::npos) << "output lacks '" << part << "':\n" << text;
  }
  // The missing names are listed; the tensors the files hold are not.
  EXPECT_EQ(text.find("model.layers.0.self_attn.q_proj.weight"), std::string::npos) << text;
}

TEST(Inspect, MissingConfigIsNamed) {
  const test::TempDir dir;
  std::ostringstream out;
  test::expect_error([&] { inspect_model(dir.path(), out); }, {"config.json"});
}

TEST(Inspect, ExpectedNamesFollowTheBiases) {
  ModelConfig c;
  c.num_hidden_layers = 2;
  c.attention_bias = true;
  c.tie_word_embeddings = false;
  const std::vector<std::string> names = expected_tensor_names(c);
  EXPECT_EQ(names.size(), 1 + 2 * (2 + 7 + 3) + 1 + 1u);
  EXPECT_EQ(names.back(), "lm_head.weight");
}

}  // namespace
}  // namespace qshard
