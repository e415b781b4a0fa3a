// config.json parsing, validation, round trip and tensor names.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "io_test_support.hpp"
#include "qshard/io/model_config.hpp"

namespace qshard {
namespace {

using test::expect_error;

// A minimal valid Llama config with `patch` merged in (a null value removes the key).
std::string config_text(const nlohmann::json& patch = nlohmann::json::object()) {
  nlohmann::json config = {{"architectures", {"LlamaForCausalLM"}},
                           {"model_type", "llama"},
                           {"hidden_size", 256},
                           {"intermediate_size", 688},
                           {"num_hidden_layers", 2},
                           {"num_attention_heads", 8},
                           {"vocab_size", 1000}};
  config.merge_patch(patch);
  return config.dump();
}

TEST(ModelConfig, DefaultsOfOptionalFields) {
  const ModelConfig c = parse_model_config_text(config_text(), "cfg.json");
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_EQ(c.torch_dtype, DType::F32);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_TRUE(c.rope_scaling.type.empty());
}

TEST(ModelConfig, Llama3RopeScaling) {
  const ModelConfig c =
      parse_model_config_text(config_text({{"rope_theta", 500000.0},
                                           {"torch_dtype", "bfloat16"},
                                           {"num_key_value_heads", 2},
                                           {"rope_scaling",
                                            {{"rope_type", "llama3"},
                                             {"factor", 8.0},
                                             {"low_freq_factor", 1.0},
                                             {"high_freq_factor", 4.0},
                                             {"original_max_position_embeddings", 8192}}}}),
                              "llama3.json");
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 8.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(c.torch_dtype, DType::BF16);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);

  const ModelConfig linear = parse_model_config_text(
      config_text({{"rope_scaling", {{"type", "linear"}, {"factor", 2.0}}}}), "linear.json");
  EXPECT_EQ(linear.rope_scaling.type, "linear");
  EXPECT_DOUBLE_EQ(linear.rope_scaling.factor, 2.0);

  expect_error(
      [] {
        parse_model_config_text(
            config_text({{"rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}}}}), "yarn.json");
      },
      {"yarn.json", "'yarn'"});
  expect_error(
      [] {
        parse_model_config_text(config_text({{"rope_scaling",
                                              {{"rope_type", "llama3"},
                                               {"factor", 8.0},
                                               {"low_freq_factor", 1.0},
                                               {"high_freq_factor", 4.0}}}}),
                                "l3.json");
      },
      {"l3.json", "original_max_position_embeddings"});
}

// transformers 5 saves rope_theta (and any scaling) inside rope_parameters, and torch_dtype as
// dtype: SmolLM2 saved by GPTQModel was read with the default rope_theta 10000 before.
TEST(ModelConfig, Transformers5RopeParametersAndDtype) {
  const ModelConfig c = parse_model_config_text(
      config_text({{"rope_parameters", {{"rope_theta", 100000.0}, {"rope_type", "default"}}},
                   {"dtype", "bfloat16"}}),
      "t5.json");
  EXPECT_DOUBLE_EQ(c.rope_theta, 100000.0);
  EXPECT_TRUE(c.rope_scaling.type.empty());
  EXPECT_EQ(c.torch_dtype, DType::BF16);

  const ModelConfig l3 =
      parse_model_config_text(config_text({{"rope_parameters",
                                            {{"rope_theta", 500000.0},
                                             {"rope_type", "llama3"},
                                             {"factor", 8.0},
                                             {"low_freq_factor", 1.0},
                                             {"high_freq_factor", 4.0},
                                             {"original_max_position_embeddings", 8192}}}}),
                              "l3.json");
  EXPECT_DOUBLE_EQ(l3.rope_theta, 500000.0);
  EXPECT_EQ(l3.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(l3.rope_scaling.factor, 8.0);

  expect_error(
      [] {
        parse_model_config_text(
            config_text({{"rope_theta", 10000.0}, {"rope_parameters", {{"rope_theta", 100000.0}}}}),
            "both.json");
      },
      {"both.json", "rope_theta", "differ"});
}

TEST(ModelConfig, Qwen2HasQkvBiasButNoOutputBias) {
  const ModelConfig c = parse_model_config_text(
      config_text({{"architectures", {"Qwen2ForCausalLM"}}, {"model_type", "qwen2"}}), "qwen.json");
  EXPECT_EQ(c.model_type, "qwen2");
  EXPECT_TRUE(c.attention_bias);
  EXPECT_FALSE(c.o_proj_bias);
  EXPECT_FALSE(c.mlp_bias);
}

// Qwen3 (as Qwen3-0.6B's config.json has it): q/k norms per head, head_dim on its own (q_proj
// 2048 wide on a hidden size of 1024), attention_bias for q/k/v and o; a sliding window refused.
TEST(ModelConfig, Qwen3HasPerHeadQkNormsAndItsOwnHeadDim) {
  const nlohmann::json qwen3 = {{"architectures", {"Qwen3ForCausalLM"}},
                                {"model_type", "qwen3"},
                                {"hidden_size", 1024},
                                {"intermediate_size", 3072},
                                {"num_attention_heads", 16},
                                {"num_key_value_heads", 8},
                                {"head_dim", 128},
                                {"attention_bias", false},
                                {"use_sliding_window", false},
                                {"sliding_window", nullptr},
                                {"max_window_layers", 28},
                                {"tie_word_embeddings", true}};
  const ModelConfig c = parse_model_config_text(config_text(qwen3), "qwen3.json");
  EXPECT_EQ(c.model_type, "qwen3");
  EXPECT_TRUE(c.qk_norm);
  EXPECT_EQ(c.q_dim(), 2048);
  EXPECT_EQ(c.kv_dim(), 1024);
  EXPECT_EQ(linear_shape(c, Linear::O), (std::pair<std::int64_t, std::int64_t>{1024, 2048}));
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FALSE(c.o_proj_bias);
  nlohmann::json biased = qwen3;
  biased["attention_bias"] = true;
  const ModelConfig b = parse_model_config_text(config_text(biased), "qwen3-bias.json");
  EXPECT_TRUE(b.attention_bias);
  EXPECT_TRUE(b.o_proj_bias);
  EXPECT_FALSE(parse_model_config_text(config_text(), "llama.json").qk_norm);
  nlohmann::json windowed = qwen3;
  windowed["use_sliding_window"] = true;
  expect_error([&] { parse_model_config_text(config_text(windowed), "window.json"); },
               {"window.json", "use_sliding_window", "not supported"});
  const ModelConfig back = parse_model_config_text(to_json(b), "round trip");
  EXPECT_TRUE(back.qk_norm);
  EXPECT_TRUE(back.attention_bias);
  EXPECT_EQ(back.head_dim, 128);
}

// The mixture-of-experts families as their config.json files spell them (Mixtral-8x7B's and
// Qwen's keys; transformers 5 saves Qwen3-MoE's expert count as num_local_experts).
TEST(ModelConfig, MixtureOfExpertsFamilies) {
  const ModelConfig mixtral =
      parse_model_config_text(config_text({{"architectures", {"MixtralForCausalLM"}},
                                           {"model_type", "mixtral"},
                                           {"num_local_experts", 8},
                                           {"num_experts_per_tok", 2},
                                           {"sliding_window", nullptr}}),
                              "mixtral.json");
  EXPECT_TRUE(mixtral.is_moe());
  EXPECT_EQ(mixtral.moe.num_experts, 8);
  EXPECT_EQ(mixtral.moe.expert_intermediate, 688);  // Mixtral's experts: intermediate_size
  EXPECT_TRUE(mixtral.moe.norm_topk_prob);
  EXPECT_TRUE(mixtral.sparse_layer(0) && mixtral.sparse_layer(1));
  EXPECT_EQ(layer_modules(mixtral, 0).size(), 4u + 8u * 3u);
  EXPECT_EQ(module_path(mixtral, {Linear::Up, 7}), "block_sparse_moe.experts.7.w3");
  EXPECT_EQ(router_name(mixtral, 3), "model.layers.3.block_sparse_moe.gate.weight");

  const nlohmann::json qwen2_moe = {{"architectures", {"Qwen2MoeForCausalLM"}},
                                    {"model_type", "qwen2_moe"},
                                    {"num_hidden_layers", 4},
                                    {"num_experts", 60},
                                    {"num_experts_per_tok", 4},
                                    {"moe_intermediate_size", 1408},
                                    {"shared_expert_intermediate_size", 5632},
                                    {"norm_topk_prob", false},
                                    {"decoder_sparse_step", 2},
                                    {"mlp_only_layers", {3}},
                                    {"use_sliding_window", false}};
  const ModelConfig q2 = parse_model_config_text(config_text(qwen2_moe), "qwen2_moe.json");
  EXPECT_TRUE(q2.attention_bias);
  EXPECT_FALSE(q2.o_proj_bias);
  EXPECT_FALSE(q2.moe.norm_topk_prob);
  // (layer + 1) % 2 == 0 and not in mlp_only_layers: only layer 1 is sparse.
  EXPECT_EQ((std::vector<bool>{q2.sparse_layer(0), q2.sparse_layer(1), q2.sparse_layer(2),
                               q2.sparse_layer(3)}),
            (std::vector<bool>{false, true, false, false}));
  const std::vector<ModuleId> sparse = layer_modules(q2, 1);
  ASSERT_EQ(sparse.size(), 4u + 60u * 3u + 3u);
  EXPECT_EQ(sparse[4], ModuleId(Linear::Gate, 0));
  EXPECT_EQ(sparse.back(), ModuleId(Linear::Down, kSharedExpert));
  EXPECT_EQ(module_shape(q2, {Linear::Down, 5}),
            (std::pair<std::int64_t, std::int64_t>{256, 1408}));
  EXPECT_EQ(module_shape(q2, {Linear::Up, kSharedExpert}),
            (std::pair<std::int64_t, std::int64_t>{5632, 256}));
  EXPECT_EQ(module_weight_name(q2, 1, {Linear::Gate, kSharedExpert}),
            "model.layers.1.mlp.shared_expert.gate_proj.weight");
  EXPECT_EQ(checkpoint_module_name(q2, {Linear::Q}), "q_proj");
  EXPECT_EQ(checkpoint_module_name(q2, {Linear::Down, 59}), "mlp.experts.59.down_proj");
  EXPECT_EQ(layer_modules(q2, 3).size(), 7u);

  const ModelConfig q3 =
      parse_model_config_text(config_text({{"architectures", {"Qwen3MoeForCausalLM"}},
                                           {"model_type", "qwen3_moe"},
                                           {"num_local_experts", 128},
                                           {"num_experts_per_tok", 8},
                                           {"moe_intermediate_size", 768},
                                           {"norm_topk_prob", true}}),
                              "qwen3_moe.json");
  EXPECT_TRUE(q3.qk_norm);
  EXPECT_EQ(q3.moe.num_experts, 128);
  EXPECT_EQ(q3.moe.shared_expert_intermediate, 0);

  for (const ModelConfig& c : {mixtral, q2, q3}) {
    const ModelConfig back = parse_model_config_text(to_json(c), "round trip");
    EXPECT_EQ(back.moe.num_experts, c.moe.num_experts) << c.model_type;
    EXPECT_EQ(back.moe.experts_per_token, c.moe.experts_per_token);
    EXPECT_EQ(back.moe.expert_intermediate, c.moe.expert_intermediate);
    EXPECT_EQ(back.moe.shared_expert_intermediate, c.moe.shared_expert_intermediate);
    EXPECT_EQ(back.moe.norm_topk_prob, c.moe.norm_topk_prob);
    EXPECT_EQ(back.moe.mlp_only_layers, c.moe.mlp_only_layers);
  }
  // Missing or impossible expert settings are named.
  expect_error(
      [&] {
        parse_model_config_text(config_text({{"model_type", "mixtral"},
                                             {"architectures", {"MixtralForCausalLM"}},
                                             {"num_experts_per_tok", 2}}),
                                "no-experts.json");
      },
      {"no-experts.json", "num_local_experts"});
  expect_error(
      [&] {
        parse_model_config_text(config_text({{"model_type", "mixtral"},
                                             {"architectures", {"MixtralForCausalLM"}},
                                             {"num_local_experts", 2},
                                             {"num_experts_per_tok", 3}}),
                                "k.json");
      },
      {"k.json", "num_experts_per_tok"});
  nlohmann::json bad_layer = qwen2_moe;
  bad_layer["mlp_only_layers"] = {9};
  expect_error([&] { parse_model_config_text(config_text(bad_layer), "layers.json"); },
               {"layers.json", "mlp_only_layers holds 9"});
  expect_error(
      [&] {
        parse_model_config_text(
            config_text({{"model_type", "deepseek_v3"}, {"architectures", nullptr}}), "ds.json");
      },
      {"ds.json", "unsupported model_type 'deepseek_v3'", "qwen3_moe"});
}

TEST(TensorNames, ExpertsInBothSpellings) {
  const auto mixtral = parse_tensor_name("model.layers.2.block_sparse_moe.experts.5.w2.weight");
  ASSERT_TRUE(mixtral.has_value());
  EXPECT_EQ(mixtral->layer, 2);
  EXPECT_EQ(mixtral->module, ModuleId(Linear::Down, 5));
  const auto qwen = parse_tensor_name("model.layers.0.mlp.experts.17.up_proj.weight");
  ASSERT_TRUE(qwen.has_value());
  EXPECT_EQ(qwen->module, ModuleId(Linear::Up, 17));
  EXPECT_EQ(parse_tensor_name("model.layers.1.mlp.shared_expert.gate_proj.weight")->module,
            ModuleId(Linear::Gate, kSharedExpert));
  EXPECT_EQ(parse_tensor_name("model.layers.1.mlp.gate.weight")->field, "router");
  EXPECT_EQ(parse_tensor_name("model.layers.1.block_sparse_moe.gate.weight")->field, "router");
  EXPECT_EQ(parse_tensor_name("model.layers.1.mlp.shared_expert_gate.weight")->field,
            "shared_expert_gate");
  for (const char* bad : {"model.layers.0.mlp.experts.01.up_proj.weight",
                          "model.layers.0.block_sparse_moe.experts.1.up_proj.weight",
                          "model.layers.0.mlp.experts.1.w1.weight",
                          "model.layers.0.block_sparse_moe.shared_expert.w1.weight",
                          "model.layers.0.mlp.experts.up_proj.weight"})
    EXPECT_FALSE(parse_tensor_name(bad).has_value()) << bad;
}

TEST(ModelConfig, LlamaAttentionBiasIncludesOutput) {
  const ModelConfig c = parse_model_config_text(
      config_text({{"attention_bias", true}, {"mlp_bias", true}}), "b.json");
  EXPECT_TRUE(c.attention_bias);
  EXPECT_TRUE(c.o_proj_bias);
  EXPECT_TRUE(c.mlp_bias);
}

TEST(ModelConfig, MistralFromArchitecturesOnly) {
  const ModelConfig c = parse_model_config_text(
      config_text({{"architectures", {"MistralForCausalLM"}}, {"model_type", nullptr}}), "m.json");
  EXPECT_EQ(c.model_type, "mistral");
}

TEST(ModelConfig, RefusesOtherArchitecturesByName) {
  expect_error(
      [] {
        parse_model_config_text(
            config_text({{"architectures", {"GPT2LMHeadModel"}}, {"model_type", nullptr}}),
            "gpt2.json");
      },
      {"gpt2.json", "GPT2LMHeadModel"});
  expect_error(
      [] {
        parse_model_config_text(config_text({{"model_type", "gpt2"}, {"architectures", nullptr}}),
                                "gpt2.json");
      },
      {"gpt2.json", "'gpt2'"});
  expect_error(
      [] {
        parse_model_config_text(config_text({{"architectures", {"Qwen2ForCausalLM"}}}), "mix.json");
      },
      {"mix.json", "Qwen2ForCausalLM", "llama"});
  expect_error(
      [] {
        parse_model_config_text(config_text({{"architectures", nullptr}, {"model_type", nullptr}}),
                                "none.json");
      },
      {"none.json", "model_type"});
}

TEST(ModelConfig, MissingAndMistypedFieldsAreNamed) {
  for (const char* field : {"hidden_size", "intermediate_size", "num_hidden_layers",
                            "num_attention_heads", "vocab_size"}) {
    expect_error(
        [&] {
          parse_model_config_text(config_text({{field, nullptr}}), "cfg.json");
        },
        {"cfg.json", field, "missing"});
  }
  expect_error(
      [] {
        parse_model_config_text(config_text({{"hidden_size", "256"}}), "cfg.json");
      },
      {"cfg.json", "hidden_size", "integer"});
  expect_error(
      [] {
        parse_model_config_text(config_text({{"tie_word_embeddings", 1}}), "cfg.json");
      },
      {"cfg.json", "tie_word_embeddings"});
  expect_error(
      [] {
        parse_model_config_text(config_text({{"torch_dtype", "int8"}}), "cfg.json");
      },
      {"cfg.json", "torch_dtype", "int8"});
  expect_error([] { parse_model_config_text("{\"hidden_size\": ", "broken.json"); },
               {"broken.json", "invalid JSON"});
  expect_error([] { parse_model_config(std::filesystem::path("/nonexistent/config.json")); },
               {"/nonexistent/config.json"});
}

TEST(ModelConfig, ValidationOfSizes) {
  expect_error(
      [] {
        parse_model_config_text(config_text({{"num_key_value_heads", 3}}), "kv.json");
      },
      {"kv.json", "num_attention_heads", "num_key_value_heads"});
  expect_error(
      [] {
        parse_model_config_text(config_text({{"hidden_size", 0}}), "zero.json");
      },
      {"zero.json", "hidden_size"});
  expect_error(
      [] {
        parse_model_config_text(config_text({{"vocab_size", -5}}), "neg.json");
      },
      {"neg.json", "vocab_size", "positive"});
  ModelConfig c = parse_model_config_text(config_text(), "ok.json");
  c.num_key_value_heads = 0;
  expect_error([&] { c.validate("struct"); }, {"struct", "num_key_value_heads"});
}

// Absurd sizes are refused when the config is read, before anything is allocated for them
// (issue 14: num_hidden_layers = 1e9 made qshard-quantize allocate and hang; 1e12 made
// qshard-inspect grow without bound).
TEST(ModelConfig, AbsurdSizesAreRefusedUpFront) {
  for (const auto& [field, value] : std::vector<std::pair<std::string, std::int64_t>>{
           {"num_hidden_layers", 1'000'000'000},
           {"num_hidden_layers", 1'000'000'000'000},
           {"hidden_size", 1'000'000'000'000},
           {"intermediate_size", 1'000'000'000},
           {"vocab_size", 1'000'000'000'000},
           {"num_attention_heads", 1'000'000'000},
           {"max_position_embeddings", 1'000'000'000'000'000}}) {
    nlohmann::json patch = {{field, value}};
    if (field == "num_attention_heads") patch["head_dim"] = 8;  // no divisibility question
    expect_error([&] { parse_model_config_text(config_text(patch), "huge.json"); },
                 {"huge.json", field, "at most"});
  }
  // head_dim * heads must stay a sane width too.
  expect_error(
      [] {
        parse_model_config_text(config_text({{"head_dim", 1'000'000'000}}), "wide.json");
      },
      {"wide.json", "head_dim"});
  // The largest real models pass.
  EXPECT_NO_THROW(parse_model_config_text(config_text({{"hidden_size", 16384},
                                                       {"intermediate_size", 53248},
                                                       {"num_hidden_layers", 126},
                                                       {"num_attention_heads", 128},
                                                       {"num_key_value_heads", 8},
                                                       {"vocab_size", 256000},
                                                       {"max_position_embeddings", 10'485'760}}),
                                          "405b.json"));
}

TEST(ModelConfig, ToJsonRoundTrips) {
  std::vector<ModelConfig> configs;
  configs.push_back(parse_model_config_text(config_text(), "a"));
  configs.push_back(
      parse_model_config_text(config_text({{"rope_scaling",
                                            {{"rope_type", "llama3"},
                                             {"factor", 32.0},
                                             {"low_freq_factor", 1.0},
                                             {"high_freq_factor", 4.0},
                                             {"original_max_position_embeddings", 8192}}},
                                           {"torch_dtype", "bfloat16"},
                                           {"tie_word_embeddings", true},
                                           {"attention_bias", true},
                                           {"rms_norm_eps", 1e-5},
                                           {"head_dim", 64}}),
                              "b"));
  configs.push_back(parse_model_config_text(
      config_text({{"architectures", {"Qwen2ForCausalLM"}},
                   {"model_type", "qwen2"},
                   {"torch_dtype", "float16"},
                   {"rope_scaling", {{"rope_type", "linear"}, {"factor", 2.5}}}}),
      "c"));
  for (const ModelConfig& c : configs) {
    const ModelConfig back = parse_model_config_text(to_json(c), "round trip");
    EXPECT_EQ(back.model_type, c.model_type);
    EXPECT_EQ(back.hidden_size, c.hidden_size);
    EXPECT_EQ(back.intermediate_size, c.intermediate_size);
    EXPECT_EQ(back.num_hidden_layers, c.num_hidden_layers);
    EXPECT_EQ(back.num_attention_heads, c.num_attention_heads);
    EXPECT_EQ(back.num_key_value_heads, c.num_key_value_heads);
    EXPECT_EQ(back.head_dim, c.head_dim);
    EXPECT_EQ(back.vocab_size, c.vocab_size);
    EXPECT_EQ(back.max_position_embeddings, c.max_position_embeddings);
    EXPECT_EQ(back.rms_norm_eps, c.rms_norm_eps);
    EXPECT_EQ(back.rope_theta, c.rope_theta);
    EXPECT_EQ(back.rope_scaling.type, c.rope_scaling.type);
    EXPECT_EQ(back.rope_scaling.factor, c.rope_scaling.factor);
    EXPECT_EQ(back.rope_scaling.low_freq_factor, c.rope_scaling.low_freq_factor);
    EXPECT_EQ(back.rope_scaling.high_freq_factor, c.rope_scaling.high_freq_factor);
    EXPECT_EQ(back.rope_scaling.original_max_position_embeddings,
              c.rope_scaling.original_max_position_embeddings);
    EXPECT_EQ(back.tie_word_embeddings, c.tie_word_embeddings);
    EXPECT_EQ(back.attention_bias, c.attention_bias);
    EXPECT_EQ(back.o_proj_bias, c.o_proj_bias);
    EXPECT_EQ(back.mlp_bias, c.mlp_bias);
    EXPECT_EQ(back.torch_dtype, c.torch_dtype);
  }
}

TEST(TensorNames, BuildAndParse) {
  EXPECT_EQ(linear_weight_name(3, Linear::Q), "model.layers.3.self_attn.q_proj.weight");
  EXPECT_EQ(linear_bias_name(0, Linear::Down), "model.layers.0.mlp.down_proj.bias");
  EXPECT_EQ(input_norm_name(2), "model.layers.2.input_layernorm.weight");
  EXPECT_EQ(post_attention_norm_name(12), "model.layers.12.post_attention_layernorm.weight");
  for (const Linear linear : kAllLinears) {
    EXPECT_EQ(parse_linear(linear_name(linear)), linear);
    for (const std::int64_t layer : {0, 7, 125}) {
      const auto weight = parse_tensor_name(linear_weight_name(layer, linear));
      ASSERT_TRUE(weight.has_value());
      EXPECT_EQ(weight->layer, layer);
      EXPECT_EQ(weight->module, ModuleId(linear));
      EXPECT_EQ(weight->field, "weight");
      const auto bias = parse_tensor_name(linear_bias_name(layer, linear));
      ASSERT_TRUE(bias.has_value());
      EXPECT_EQ(bias->field, "bias");
    }
  }
  EXPECT_EQ(parse_linear("q"), Linear::Q);
  EXPECT_EQ(parse_linear("gate"), Linear::Gate);
  EXPECT_FALSE(parse_linear("qkv_proj").has_value());
  EXPECT_EQ(linear_parent(Linear::O), "self_attn");
  EXPECT_EQ(linear_parent(Linear::Up), "mlp");

  EXPECT_EQ(q_norm_name(5), "model.layers.5.self_attn.q_norm.weight");
  EXPECT_EQ(k_norm_name(0), "model.layers.0.self_attn.k_norm.weight");
  for (const auto& [name, field] :
       {std::pair{q_norm_name(5), "q_norm"}, {k_norm_name(5), "k_norm"}}) {
    const auto ref = parse_tensor_name(name);
    ASSERT_TRUE(ref.has_value()) << name;
    EXPECT_EQ(ref->layer, 5);
    EXPECT_FALSE(ref->module.has_value());
    EXPECT_EQ(ref->field, field);
  }
  EXPECT_FALSE(parse_tensor_name("model.layers.5.self_attn.q_norm.bias").has_value());

  const auto norm = parse_tensor_name("model.layers.4.post_attention_layernorm.weight");
  ASSERT_TRUE(norm.has_value());
  EXPECT_EQ(norm->layer, 4);
  EXPECT_FALSE(norm->module.has_value());
  EXPECT_EQ(norm->field, "post_attention_layernorm");
  EXPECT_EQ(parse_tensor_name("model.layers.0.input_layernorm.weight")->field, "input_layernorm");
  EXPECT_EQ(parse_tensor_name(kEmbedName)->field, "embed_tokens");
  EXPECT_EQ(parse_tensor_name(kEmbedName)->layer, -1);
  EXPECT_EQ(parse_tensor_name(kFinalNormName)->field, "norm");
  EXPECT_EQ(parse_tensor_name(kLmHeadName)->field, "lm_head");

  for (const char* unknown :
       {"model.layers.0.self_attn.rotary_emb.inv_freq", "model.layers.0.mlp.q_proj.weight",
        "model.layers.x.self_attn.q_proj.weight", "model.layers.01.self_attn.q_proj.weight",
        "model.layers.-1.self_attn.q_proj.weight", "model.layers.0.self_attn.q_proj.weight.x",
        "model.layers..self_attn.q_proj.weight", "lm_head.bias",
        "model.layers.0.input_layernorm"}) {
    EXPECT_FALSE(parse_tensor_name(unknown).has_value()) << unknown;
  }
}

}  // namespace
}  // namespace qshard
