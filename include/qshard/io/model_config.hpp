#pragma once
// The LLaMA-family config.json as a typed struct, and the mapping of HF tensor names to layers.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qshard/core/dtype.hpp"

namespace qshard {

// Llama-3 style "rope_scaling": {"rope_type": "llama3", factor, low_freq_factor, ...}.
struct RopeScaling {
  std::string type;  // "llama3" or "linear"; empty when absent
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  std::int64_t original_max_position_embeddings = 8192;
};

// Upper bounds of config.json sizes, far beyond every real model: an absurd value (a corrupt
// file, num_hidden_layers = 1e12) is refused when the config is read, before anything is sized by
// it. Hugging Face directories are bounded more tightly by what their weight files hold.
inline constexpr std::int64_t kMaxLayers = 4096;
inline constexpr std::int64_t kMaxHeads = 4096;
inline constexpr std::int64_t kMaxWidth = std::int64_t{1} << 20;  // features of any linear input
inline constexpr std::int64_t kMaxVocab = std::int64_t{1} << 24;
inline constexpr std::int64_t kMaxPositions = std::int64_t{1} << 28;
inline constexpr std::int64_t kMaxExperts = 4096;

// Mixture-of-experts settings (mixtral, qwen2_moe, qwen3_moe); num_experts == 0: a dense model.
struct MoeConfig {
  std::int64_t num_experts = 0;          // routed experts of a sparse layer
  std::int64_t experts_per_token = 0;    // top-k of the router
  std::int64_t expert_intermediate = 0;  // each routed expert's width (Mixtral: intermediate_size)
  std::int64_t shared_expert_intermediate = 0;  // Qwen2-MoE's shared expert; 0: none
  bool norm_topk_prob = false;           // renormalise the k chosen probabilities (Mixtral: always)
  std::int64_t decoder_sparse_step = 1;  // every step-th layer is sparse (Qwen-MoE)
  std::vector<std::int64_t> mlp_only_layers;  // layers kept dense (Qwen-MoE)
};

struct ModelConfig {
  // llama, mistral, qwen2, qwen3 (dense); mixtral, qwen2_moe, qwen3_moe (mixture of experts)
  std::string model_type = "llama";
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;
  std::int64_t num_hidden_layers = 0;
  std::int64_t num_attention_heads = 0;
  std::int64_t num_key_value_heads = 0;
  std::int64_t head_dim = 0;  // hidden_size / num_attention_heads when absent
  std::int64_t vocab_size = 0;
  std::int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v (and o for Llama) bias; Qwen2 has q/k/v bias only
  bool o_proj_bias = false;
  bool mlp_bias = false;
  bool qk_norm =
      false;  // Qwen3: RMSNorm over each query and key head (q_norm, k_norm) before rotary
  DType torch_dtype = DType::F32;
  MoeConfig moe;

  std::int64_t q_dim() const { return num_attention_heads * head_dim; }
  bool is_moe() const { return moe.num_experts > 0; }
  // Whether decoder layer `layer` routes its MLP over experts (the Hugging Face rule: not in
  // mlp_only_layers and (layer + 1) a multiple of decoder_sparse_step).
  bool sparse_layer(std::int64_t layer) const;
  std::int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  // Throws qshard::Error when the numbers are inconsistent (zero sizes, heads not dividing, ...).
  void validate(std::string_view source) const;
};

// Parses a config.json; refuses architectures other than the LLaMA family by name.
ModelConfig parse_model_config(const std::filesystem::path& config_json);
ModelConfig parse_model_config_text(std::string_view json_text, std::string_view source);
std::string to_json(const ModelConfig& config);  // a config.json body

// The seven linear modules of a decoder layer.
enum class Linear : std::uint8_t { Q, K, V, O, Gate, Up, Down };
inline constexpr Linear kAllLinears[] = {Linear::Q,    Linear::K,  Linear::V,   Linear::O,
                                         Linear::Gate, Linear::Up, Linear::Down};
// An MLP's (dense, or an expert's).
inline constexpr Linear kMlpLinears[] = {Linear::Gate, Linear::Up, Linear::Down};
std::string_view linear_name(Linear linear);                // "q_proj", ..., "down_proj"
std::optional<Linear> parse_linear(std::string_view name);  // accepts "q_proj" and "q"
std::string_view linear_parent(Linear linear);              // "self_attn" or "mlp"

// The kinds of input of a layer's linear modules (the groups solved one after the other with
// true_sequential).
enum class LinearInput : std::uint8_t {
  Attention,        // q, k, v: RMSNorm(hidden)
  AttentionOutput,  // o: the attention heads' output
  Mlp,              // gate, up: RMSNorm(hidden + attention) (an expert's: the tokens routed to it)
  MlpDown,          // down: silu(gate) * up
};
LinearInput input_of(Linear linear);
// [out_features, in_features] of a decoder layer's linear module.
std::pair<std::int64_t, std::int64_t> linear_shape(const ModelConfig& config, Linear linear);

// Who a linear module of a decoder layer belongs to: attention or a dense MLP (kDense), Qwen2-MoE's
// shared expert (kSharedExpert), or routed expert 0, 1, ...
inline constexpr std::int32_t kDense = -1;
inline constexpr std::int32_t kSharedExpert = -2;
struct ModuleId {
  // A Linear alone names the dense module (attention, or the dense MLP).
  constexpr ModuleId(Linear l = Linear::Q, std::int32_t e = kDense)  // NOLINT: implicit on purpose
      : linear(l), expert(e) {}
  Linear linear;
  std::int32_t expert;
  bool dense() const { return expert == kDense; }
  friend auto operator<=>(const ModuleId&, const ModuleId&) = default;
};
// The linear modules of decoder layer `layer` in their fixed order: q, k, v, o, then gate, up and
// down of the dense MLP, or of each routed expert in expert order followed by the shared expert's.
std::vector<ModuleId> layer_modules(const ModelConfig& config, std::int64_t layer);
// The same for a layer that is sparse or not (for code that holds a layer's weights, not its
// index).
std::vector<ModuleId> layer_modules_for(const ModelConfig& config, bool sparse);
// [out_features, in_features] of a module.
std::pair<std::int64_t, std::int64_t> module_shape(const ModelConfig& config, ModuleId module);
// The module's Hugging Face path inside its layer: "self_attn.q_proj", "mlp.experts.7.down_proj",
// Mixtral's "block_sparse_moe.experts.7.w2", "mlp.shared_expert.up_proj".
std::string module_path(const ModelConfig& config, ModuleId module);
// Its name in a qshard checkpoint's layer group: "q_proj" for the dense modules (as format 2 has
// always named them), the Hugging Face path for an expert's.
std::string checkpoint_module_name(const ModelConfig& config, ModuleId module);
// "model.layers.{layer}.{module_path}.weight" / ".bias".
std::string module_weight_name(const ModelConfig& config, std::int64_t layer, ModuleId module);
std::string module_bias_name(const ModelConfig& config, std::int64_t layer, ModuleId module);
// A sparse layer's router ("mlp.gate.weight"; Mixtral "block_sparse_moe.gate.weight") and
// Qwen2-MoE's shared-expert gate ("mlp.shared_expert_gate.weight"), kept in floating point.
std::string router_name(const ModelConfig& config, std::int64_t layer);
std::string shared_expert_gate_name(std::int64_t layer);
std::string router_path(const ModelConfig& config);  // inside the layer: "mlp.gate.weight"
inline constexpr std::string_view kSharedExpertGatePath = "mlp.shared_expert_gate.weight";

// HF tensor names: "model.layers.{i}.self_attn.q_proj.weight" etc.
std::string linear_weight_name(std::int64_t layer, Linear linear);
std::string linear_bias_name(std::int64_t layer, Linear linear);
std::string input_norm_name(std::int64_t layer);           // ...input_layernorm.weight
std::string post_attention_norm_name(std::int64_t layer);  // ...post_attention_layernorm.weight
std::string q_norm_name(std::int64_t layer);               // ...self_attn.q_norm.weight (Qwen3)
std::string k_norm_name(std::int64_t layer);               // ...self_attn.k_norm.weight (Qwen3)
inline constexpr std::string_view kEmbedName = "model.embed_tokens.weight";
inline constexpr std::string_view kFinalNormName = "model.norm.weight";
inline constexpr std::string_view kLmHeadName = "lm_head.weight";

struct TensorRef {
  std::int64_t layer = -1;         // -1 for tensors outside the decoder layers
  std::optional<ModuleId> module;  // set for a linear module's weight or bias
  std::string field;  // "weight", "bias", "input_layernorm", "router", "shared_expert_gate", ...
};
// Maps an HF tensor name to its layer and module; nullopt for names it does not know. Both expert
// spellings are recognised (Mixtral's block_sparse_moe.experts.N.w1/w2/w3 and Qwen's
// mlp.experts.N.gate_proj/...): whether a model may hold them is its config's to say.
std::optional<TensorRef> parse_tensor_name(std::string_view name);
// The layer index of any "model.layers.N." name (known field or not); nullopt for other names.
std::optional<std::int64_t> layer_of_name(std::string_view name);

}  // namespace qshard
