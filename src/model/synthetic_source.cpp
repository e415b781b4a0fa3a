#include "qshard/model/synthetic_source.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string_view>
#include <thread>
#include <vector>

#include "qshard/core/error.hpp"

namespace qshard {
namespace {

constexpr std::string_view kPrefix = "synthetic:";

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::uint64_t hash_name(std::string_view name, std::uint64_t seed) {
  std::uint64_t h = 1469598103934665603ull ^ splitmix64(seed);
  for (const char c : name) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return splitmix64(h);
}

// Uniform in (0, 1) from a counter: random access to any element, the same on every platform.
double uniform(std::uint64_t key, std::uint64_t counter) {
  return (static_cast<double>(splitmix64(key ^ splitmix64(counter)) >> 11) + 0.5) * 0x1.0p-53;
}

// Standard normal number `index` of the stream `key`: element 2p and 2p + 1 are the two outputs
// of one Box-Muller transform of two 24-bit uniforms from SplitMix64 (state key + p * gamma), in
// float. One hash, one log, one square root and one sine/cosine per two values; any element can
// be computed alone, so any split over threads gives the same values.
struct NormalPair {
  float even, odd;
};
NormalPair normal_pair(std::uint64_t key, std::uint64_t pair) {
  const std::uint64_t bits = splitmix64(key + pair * 0x9e3779b97f4a7c15ull);
  const float u1 = (static_cast<float>(bits >> 40) + 0.5f) * 0x1.0p-24f;
  const float u2 = (static_cast<float>(bits & 0xffffffull) + 0.5f) * 0x1.0p-24f;
  const float radius = std::sqrt(-2.0f * std::log(u1));
  const float angle = 6.2831853071795865f * u2;
  return {radius * std::cos(angle), radius * std::sin(angle)};
}

float normal(std::uint64_t key, std::uint64_t index) {
  const NormalPair p = normal_pair(key, index / 2);
  return index % 2 == 0 ? p.even : p.odd;
}

// values[i] = scale(i) * normal(key, first + i) for i in [0, count), as the storage dtype rounds
// them (bf16/fp16; F32 keeps them).
float stored_as(DType dtype, float v) {
  if (dtype == DType::BF16) return bf16_to_f32(f32_to_bf16(v));
  if (dtype == DType::F16) return round_to_f16(v);
  return v;
}

template <typename Scale>
void fill_normal(float* values, std::int64_t count, std::uint64_t key, std::uint64_t first,
                 DType dtype, const Scale& scale) {
  const auto store = [dtype](float v) { return stored_as(dtype, v); };
  std::int64_t i = 0;
  if (count > 0 && first % 2 == 1) {
    values[0] = store(scale(0) * normal(key, first));
    i = 1;
  }
  for (; i + 1 < count; i += 2) {
    const NormalPair p = normal_pair(key, (first + static_cast<std::uint64_t>(i)) / 2);
    values[i] = store(scale(i) * p.even);
    values[i + 1] = store(scale(i + 1) * p.odd);
  }
  if (i < count) values[i] = store(scale(i) * normal(key, first + static_cast<std::uint64_t>(i)));
}

ModelConfig preset(std::int64_t hidden, std::int64_t inter, std::int64_t layers, std::int64_t heads,
                   std::int64_t kv_heads, std::int64_t vocab, double theta) {
  ModelConfig c;
  c.model_type = "llama";
  c.hidden_size = hidden;
  c.intermediate_size = inter;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.head_dim = hidden / heads;
  c.vocab_size = vocab;
  c.max_position_embeddings = 8192;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = theta;
  c.torch_dtype = DType::BF16;
  return c;
}

// Runs fn(begin, end) over [0, rows) split across the hardware threads (the values are a pure
// function of their index, so any split gives the same matrix).
template <typename Fn>
void parallel_rows(std::int64_t rows, const Fn& fn) {
  const auto threads = std::clamp<std::int64_t>(std::thread::hardware_concurrency(), 1, 64);
  const std::int64_t parts = std::min(threads, std::max<std::int64_t>(rows / 64, 1));
  std::vector<std::thread> workers;
  for (std::int64_t p = 1; p < parts; ++p)
    workers.emplace_back(fn, rows * p / parts, rows * (p + 1) / parts);
  fn(std::int64_t{0}, rows / parts);
  for (std::thread& w : workers) w.join();
}

class SyntheticSource final : public WeightSource {
 public:
  SyntheticSource(ModelConfig config, std::string name, std::uint64_t seed)
      : config_(std::move(config)), name_(std::move(name)), seed_(seed) {
    config_.validate(describe());
  }
  const ModelConfig& config() const override { return config_; }
  bool contains(const std::string& name) const override {
    const auto ref = parse_tensor_name(name);
    if (!ref) return false;
    if (name == kLmHeadName) return !config_.tie_word_embeddings;
    if (ref->layer >= config_.num_hidden_layers) return false;
    if (ref->module) {
      const std::vector<ModuleId> modules = layer_modules(config_, ref->layer);
      if (std::find(modules.begin(), modules.end(), *ref->module) == modules.end()) return false;
      if (ref->field == "bias") return ref->module->dense() && has_bias(ref->module->linear);
      // Mixtral's and Qwen's expert spellings name the same module: only the family's own is here.
      return name == module_weight_name(config_, ref->layer, *ref->module);
    }
    if (ref->field == "q_norm" || ref->field == "k_norm") return config_.qk_norm;
    if (ref->field == "router")
      return name == router_name(config_, ref->layer) && config_.sparse_layer(ref->layer);
    if (ref->field == "shared_expert_gate")
      return config_.sparse_layer(ref->layer) && config_.moe.shared_expert_intermediate > 0;
    return true;
  }
  // The tensor as a checkpoint of the config's dtype holds it: values rounded to bf16/fp16, so
  // that the model written to disk (qshard-inspect --write-synthetic) is the same model.
  MatrixF load(const std::string& name) const override {
    if (name == kLmHeadName && config_.tie_word_embeddings) return load(std::string(kEmbedName));
    const auto ref = parse_tensor_name(name);
    require(ref.has_value() && contains(name), describe(), ": no tensor '", name, "'");
    const std::uint64_t key = hash_name(name, seed_);
    const std::int64_t hidden = config_.hidden_size;
    if (name == kEmbedName || name == kLmHeadName)
      return gaussian(key, config_.vocab_size, hidden, 1.0f);
    if (ref->module) {
      const auto [rows, cols] = module_shape(config_, *ref->module);
      if (ref->field == "bias") return gaussian(key, 1, rows, 0.02f);
      return linear(key, rows, cols, *ref->module, ref->layer);
    }
    // The router: logits of a few units' spread, so that tokens pick their experts decisively.
    if (ref->field == "router")
      return gaussian(key, config_.moe.num_experts, hidden,
                      static_cast<float>(2.0 / std::sqrt(static_cast<double>(hidden))));
    if (ref->field == "shared_expert_gate")
      return gaussian(key, 1, hidden,
                      static_cast<float>(1.0 / std::sqrt(static_cast<double>(hidden))));
    // RMSNorm weights: around 1, with a few large channels that become large-variance inputs.
    const bool per_head = ref->field == "q_norm" || ref->field == "k_norm";
    const std::int64_t width = per_head ? config_.head_dim : hidden;
    MatrixF norm(1, width);
    const auto forced =
        static_cast<std::int64_t>(splitmix64(key) % static_cast<std::uint64_t>(width));
    for (std::int64_t c = 0; c < width; ++c) {
      const bool outlier =
          c == forced || uniform(key ^ 0x5bd1e995ull, static_cast<std::uint64_t>(c)) < 0.01;
      const float value =
          (1.0f + 0.1f * normal(key, static_cast<std::uint64_t>(c))) * (outlier ? 6.0f : 1.0f);
      norm(0, c) = stored_as(config_.torch_dtype, value);
    }
    return norm;
  }
  std::string describe() const override {
    return str("synthetic model '", name_, "' (seed ", seed_, ")");
  }

 private:
  bool has_bias(Linear l) const {
    if (l == Linear::Q || l == Linear::K || l == Linear::V) return config_.attention_bias;
    if (l == Linear::O) return config_.o_proj_bias;
    return config_.mlp_bias;
  }
  MatrixF gaussian(std::uint64_t key, std::int64_t rows, std::int64_t cols, float stddev) const {
    MatrixF m(rows, cols);
    parallel_rows(rows, [&](std::int64_t begin, std::int64_t end) {
      fill_normal(m.data() + begin * cols, (end - begin) * cols, key,
                  static_cast<std::uint64_t>(begin * cols), config_.torch_dtype,
                  [stddev](std::int64_t) { return stddev; });
    });
    return m;
  }
  // N(0, 1/in) scaled per row (log-normal) and on ~1% of input columns (x4); the residual
  // projections are scaled down by sqrt(2 * layers) so the residual stream stays bounded.
  MatrixF linear(std::uint64_t key, std::int64_t rows, std::int64_t cols, ModuleId module,
                 std::int64_t layer) const {
    const Linear l = module.linear;
    const bool residual = l == Linear::O || l == Linear::Down;
    const double base =
        1.0 / std::sqrt(static_cast<double>(cols)) /
        (residual ? std::sqrt(2.0 * static_cast<double>(config_.num_hidden_layers)) : 1.0);
    const std::uint64_t column_key =
        hash_name(str("columns.", layer, ".", checkpoint_module_name(config_, module)), seed_);
    // ~1% of the columns, and always at least one.
    const auto forced =
        static_cast<std::int64_t>(splitmix64(column_key) % static_cast<std::uint64_t>(cols));
    std::vector<float> column_scale(static_cast<std::size_t>(cols));
    for (std::int64_t c = 0; c < cols; ++c)
      column_scale[static_cast<std::size_t>(c)] =
          (c == forced || uniform(column_key, static_cast<std::uint64_t>(c)) < 0.01) ? 4.0f : 1.0f;
    MatrixF m(rows, cols);
    parallel_rows(rows, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t r = begin; r < end; ++r) {
        const auto row_scale = static_cast<float>(
            base * std::exp(0.3 * normal(key ^ 0xabcdefull, static_cast<std::uint64_t>(r))));
        fill_normal(m.data() + r * cols, cols, key, static_cast<std::uint64_t>(r * cols),
                    config_.torch_dtype, [&](std::int64_t c) {
                      return row_scale * column_scale[static_cast<std::size_t>(c)];
                    });
      }
    });
    return m;
  }

  ModelConfig config_;
  std::string name_;
  std::uint64_t seed_;
};

}  // namespace

std::vector<std::string> synthetic_presets() {
  return {"tiny",           "qwen3-tiny",   "mixtral-tiny",  "qwen2-moe-tiny",
          "qwen3-moe-tiny", "llama2-7b",    "llama3-8b",     "llama3-70b",
          "llama3-405b",    "mixtral-8x7b", "qwen3-30b-a3b", "qwen3-235b-a22b"};
}

namespace {

// Qwen3's shape rules on a preset: q/k RMSNorm per head, head_dim set on its own (q_proj may be
// wider than the hidden size, as in Qwen3-0.6B: 16 heads of 128 on a hidden size of 1024).
ModelConfig qwen3(ModelConfig c, std::int64_t head_dim) {
  c.model_type = "qwen3";
  c.qk_norm = true;
  c.head_dim = head_dim;
  c.rms_norm_eps = 1e-6;
  c.tie_word_embeddings = true;
  return c;
}

// A mixture-of-experts family on a dense preset: `experts` routed experts of `width`, top-k.
ModelConfig moe(ModelConfig c, std::string model_type, std::int64_t experts, std::int64_t k,
                std::int64_t width, bool norm_topk_prob) {
  c.model_type = std::move(model_type);
  c.moe.num_experts = experts;
  c.moe.experts_per_token = k;
  c.moe.expert_intermediate = width;
  c.moe.norm_topk_prob = norm_topk_prob;
  return c;
}

// Qwen2-MoE's shape rules: q/k/v biases, a gated shared expert of `shared` in every sparse layer.
ModelConfig qwen2_moe(ModelConfig c, std::int64_t shared, std::vector<std::int64_t> dense_layers) {
  c.attention_bias = true;
  c.moe.shared_expert_intermediate = shared;
  c.moe.mlp_only_layers = std::move(dense_layers);
  return c;
}

}  // namespace

ModelConfig synthetic_config(const std::string& name) {
  // Tiny mixtures for tests: 8 or 16 experts; Qwen2-MoE's layer 1 dense (mlp_only_layers).
  if (name == "mixtral-tiny")
    return moe(preset(128, 176, 4, 4, 2, 1024, 1000000.0), "mixtral", 8, 2, 176, true);
  if (name == "qwen2-moe-tiny")
    return qwen2_moe(moe(preset(128, 352, 4, 4, 2, 1024, 1000000.0), "qwen2_moe", 8, 2, 64, false),
                     176, {1});
  if (name == "qwen3-moe-tiny")
    return moe(qwen3(preset(128, 352, 4, 4, 2, 1024, 1000000.0), 64), "qwen3_moe", 16, 4, 64, true);
  // The published shapes (config.json of each model).
  if (name == "mixtral-8x7b")
    return moe(preset(4096, 14336, 32, 32, 8, 32000, 1000000.0), "mixtral", 8, 2, 14336, true);
  if (name == "qwen3-30b-a3b") {
    ModelConfig c = moe(qwen3(preset(2048, 6144, 48, 32, 4, 151936, 1000000.0), 128), "qwen3_moe",
                        128, 8, 768, true);
    c.tie_word_embeddings = false;
    return c;
  }
  if (name == "qwen3-235b-a22b") {
    ModelConfig c = moe(qwen3(preset(4096, 12288, 94, 64, 4, 151936, 1000000.0), 128), "qwen3_moe",
                        128, 8, 1536, true);
    c.tie_word_embeddings = false;
    return c;
  }
  if (name == "tiny") return preset(128, 352, 4, 4, 2, 1024, 10000.0);
  if (name == "qwen3-tiny") return qwen3(preset(128, 352, 4, 4, 2, 1024, 1000000.0), 64);
  if (name == "llama2-7b") return preset(4096, 11008, 32, 32, 32, 32000, 10000.0);
  if (name == "llama3-8b") return preset(4096, 14336, 32, 32, 8, 128256, 500000.0);
  if (name == "llama3-70b") return preset(8192, 28672, 80, 64, 8, 128256, 500000.0);
  if (name == "llama3-405b") return preset(16384, 53248, 126, 128, 8, 128256, 500000.0);
  std::string presets;
  for (const std::string& preset_name : synthetic_presets())
    presets += (presets.empty() ? "" : ", ") + preset_name;
  throw Error(str("unknown synthetic model '", name, "' (presets: ", presets,
                  ", or the path of a config.json)"));
}

std::unique_ptr<WeightSource> open_synthetic_model(const std::string& spec, std::uint64_t seed) {
  if (spec.ends_with(".json")) {
    return std::make_unique<SyntheticSource>(parse_model_config(spec), spec, seed);
  }
  return std::make_unique<SyntheticSource>(synthetic_config(spec), spec, seed);
}

}  // namespace qshard
