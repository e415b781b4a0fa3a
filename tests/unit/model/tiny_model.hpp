#pragma once
// A tiny random LLaMA (GQA: 4 heads over 2 kv heads, q/k/v/o bias, untied head, Llama-3 rope
// scaling) kept in double precision, and written as a Hugging Face directory (config.json +
// model.safetensors) for the model tests.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "qshard/io/model_config.hpp"
#include "qshard/io/safetensors.hpp"

namespace qshard::test {

using Vec = std::vector<double>;
using Mat = std::vector<Vec>;  // [rows][cols]

struct TinyModel {
  ModelConfig config;
  std::map<std::string, Mat> tensors;  // 1-D tensors as one row
};

inline TinyModel make_tiny(std::uint64_t seed) {
  TinyModel m;
  ModelConfig& c = m.config;
  c.model_type = "llama";
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.vocab_size = 64;
  c.max_position_embeddings = 64;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 500.0;
  c.rope_scaling = {"llama3", 4.0, 1.0, 4.0, 16};
  c.tie_word_embeddings = false;
  c.attention_bias = true;
  c.o_proj_bias = true;
  c.torch_dtype = DType::F32;
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  const auto random = [&](std::int64_t rows, std::int64_t cols, double scale, double offset = 0.0) {
    Mat t(static_cast<std::size_t>(rows), Vec(static_cast<std::size_t>(cols)));
    for (Vec& row : t)
      for (double& v : row)
        v = offset + scale * static_cast<float>(normal(rng));  // fp32-representable
    for (Vec& row : t)
      for (double& v : row) v = static_cast<float>(v);
    return t;
  };
  m.tensors[std::string(kEmbedName)] = random(c.vocab_size, c.hidden_size, 1.0);
  m.tensors[std::string(kLmHeadName)] = random(c.vocab_size, c.hidden_size, 0.3);
  m.tensors[std::string(kFinalNormName)] = random(1, c.hidden_size, 0.1, 1.0);
  for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) {
    m.tensors[input_norm_name(l)] = random(1, c.hidden_size, 0.1, 1.0);
    m.tensors[post_attention_norm_name(l)] = random(1, c.hidden_size, 0.1, 1.0);
    const std::pair<Linear, std::pair<std::int64_t, std::int64_t>> shapes[] = {
        {Linear::Q, {32, 32}},   {Linear::K, {16, 32}},    {Linear::V, {16, 32}},
        {Linear::O, {32, 32}},   {Linear::Gate, {48, 32}}, {Linear::Up, {48, 32}},
        {Linear::Down, {32, 48}}};
    for (const auto& [linear, shape] : shapes) {
      m.tensors[linear_weight_name(l, linear)] = random(shape.first, shape.second, 0.3);
      if (linear == Linear::Q || linear == Linear::K || linear == Linear::V || linear == Linear::O)
        m.tensors[linear_bias_name(l, linear)] = random(1, shape.first, 0.1);
    }
  }
  return m;
}

// A tiny random Qwen3: q/k RMSNorm per head, 4 query heads of 16 over 2 kv heads (q_proj wider
// than the hidden size of 32), no biases, no rope scaling, the head tied to the embedding.
inline TinyModel make_tiny_qwen3(std::uint64_t seed) {
  TinyModel m = make_tiny(seed);
  ModelConfig& c = m.config;
  c.model_type = "qwen3";
  c.head_dim = 16;
  c.rope_theta = 1000.0;
  c.rope_scaling = {};
  c.tie_word_embeddings = true;
  c.attention_bias = false;
  c.o_proj_bias = false;
  c.qk_norm = true;
  c.rms_norm_eps = 1e-6;
  std::mt19937_64 rng(seed ^ 0x5157454eull);
  std::normal_distribution<double> normal;
  const auto random = [&](std::int64_t rows, std::int64_t cols, double scale, double offset) {
    Mat t(static_cast<std::size_t>(rows), Vec(static_cast<std::size_t>(cols)));
    for (Vec& row : t)
      for (double& v : row) v = static_cast<float>(offset + scale * normal(rng));
    return t;
  };
  std::map<std::string, Mat> tensors;
  tensors[std::string(kEmbedName)] = m.tensors.at(std::string(kEmbedName));
  tensors[std::string(kFinalNormName)] = m.tensors.at(std::string(kFinalNormName));
  for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) {
    tensors[input_norm_name(l)] = m.tensors.at(input_norm_name(l));
    tensors[post_attention_norm_name(l)] = m.tensors.at(post_attention_norm_name(l));
    tensors[q_norm_name(l)] = random(1, c.head_dim, 0.2, 1.0);
    tensors[k_norm_name(l)] = random(1, c.head_dim, 0.2, 1.0);
    for (const Linear linear : kAllLinears) {
      const auto [rows, cols] = linear_shape(c, linear);
      tensors[linear_weight_name(l, linear)] = random(rows, cols, 0.3, 0.0);
    }
  }
  m.tensors = std::move(tensors);
  return m;
}

// A tiny random mixture of experts of `family` on the attention of make_tiny (mixtral,
// qwen2_moe) or make_tiny_qwen3 (qwen3_moe): 4 experts of 24, top-2 (renormalised for mixtral and
// qwen3_moe); qwen2_moe adds a gated shared expert of 40 and keeps layer 1 dense.
inline TinyModel make_tiny_moe(std::uint64_t seed, const std::string& family) {
  TinyModel m = family == "qwen3_moe" ? make_tiny_qwen3(seed) : make_tiny(seed);
  ModelConfig& c = m.config;
  c.model_type = family;
  c.moe.num_experts = 4;
  c.moe.experts_per_token = 2;
  c.moe.expert_intermediate = family == "mixtral" ? c.intermediate_size : 24;
  c.moe.norm_topk_prob = family != "qwen2_moe";
  if (family == "qwen2_moe") {
    c.moe.shared_expert_intermediate = 40;
    c.moe.mlp_only_layers = {1};
    c.rope_scaling = {};
    c.o_proj_bias = false;  // Qwen2: q/k/v biases only
    m.tensors.erase(linear_bias_name(0, Linear::O));
    m.tensors.erase(linear_bias_name(1, Linear::O));
  }
  if (family == "mixtral") {
    c.attention_bias = false;
    c.o_proj_bias = false;
    for (std::int64_t l = 0; l < c.num_hidden_layers; ++l)
      for (const Linear linear : kAllLinears) m.tensors.erase(linear_bias_name(l, linear));
  }
  std::mt19937_64 rng(seed ^ 0x4d6f45ull);
  std::normal_distribution<double> normal;
  const auto random = [&](std::int64_t rows, std::int64_t cols, double scale) {
    Mat t(static_cast<std::size_t>(rows), Vec(static_cast<std::size_t>(cols)));
    for (Vec& row : t)
      for (double& v : row) v = static_cast<float>(scale * normal(rng));
    return t;
  };
  for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) {
    if (!c.sparse_layer(l)) continue;
    for (const Linear linear : {Linear::Gate, Linear::Up, Linear::Down})
      m.tensors.erase(linear_weight_name(l, linear));
    m.tensors[router_name(c, l)] = random(c.moe.num_experts, c.hidden_size, 0.5);
    if (c.moe.shared_expert_intermediate > 0)
      m.tensors[shared_expert_gate_name(l)] = random(1, c.hidden_size, 0.3);
    for (const ModuleId module : layer_modules(c, l)) {
      if (module.dense()) continue;
      const auto [rows, cols] = module_shape(c, module);
      m.tensors[module_weight_name(c, l, module)] = random(rows, cols, 0.3);
    }
  }
  return m;
}

inline void write_model(const TinyModel& m, const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "config.json") << to_json(m.config);
  std::vector<Tensor> tensors;
  std::vector<std::string> names;
  for (const auto& [name, t] : m.tensors) {
    std::vector<float> values;
    for (const Vec& row : t) values.insert(values.end(), row.begin(), row.end());
    const bool vector =
        name.find("norm") != std::string::npos || name.find("bias") != std::string::npos;
    const Shape shape =
        vector ? Shape{static_cast<std::int64_t>(t[0].size())}
               : Shape{static_cast<std::int64_t>(t.size()), static_cast<std::int64_t>(t[0].size())};
    tensors.push_back(Tensor::from_f32(values, shape, DType::F32));
    names.push_back(name);
  }
  std::vector<NamedTensor> named;
  for (std::size_t i = 0; i < tensors.size(); ++i) named.push_back({names[i], &tensors[i]});
  write_safetensors(dir / "model.safetensors", named);
}

// A temporary directory removed with everything in it when the object goes.
class TempDir {
 public:
  explicit TempDir(const std::string& stem)
      : path_(std::filesystem::temp_directory_path() /
              (stem + "-" + std::to_string(std::random_device{}()))) {
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace qshard::test
