// Hugging Face tensor names of the LLaMA family and its mixture-of-experts relatives, and their
// parsing.
#include <charconv>

#include "qshard/core/error.hpp"
#include "qshard/io/model_config.hpp"

namespace qshard {
namespace {

constexpr std::string_view kLayerPrefix = "model.layers.";

// Strips `prefix` from the front of `text`; false when it is not there.
bool consume(std::string_view& text, const std::string_view prefix) {
  if (!text.starts_with(prefix)) return false;
  text.remove_prefix(prefix.size());
  return true;
}

// A decimal layer index without sign or leading zeros, followed by '.'.
std::optional<std::int64_t> consume_index(std::string_view& text) {
  const std::size_t dot = text.find('.');
  if (dot == 0 || dot == std::string_view::npos) return std::nullopt;
  const std::string_view digits = text.substr(0, dot);
  if (digits.size() > 1 && digits.front() == '0') return std::nullopt;
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (error != std::errc() || end != digits.data() + digits.size() || value < 0) {
    return std::nullopt;
  }
  text.remove_prefix(dot + 1);
  return value;
}

std::string layer_prefix(const std::int64_t layer) { return str(kLayerPrefix, layer, "."); }

bool is_mixtral(const ModelConfig& c) { return c.model_type == "mixtral"; }

// Mixtral's expert modules: w1 = gate, w3 = up, w2 = down.
std::string_view mixtral_name(const Linear linear) {
  switch (linear) {
    case Linear::Gate:
      return "w1";
    case Linear::Up:
      return "w3";
    case Linear::Down:
      return "w2";
    default:
      throw Error(str("Mixtral experts have no ", linear_name(linear)));
  }
}

// "experts.N.<name>.weight|bias" after "mlp." or "block_sparse_moe.", with either spelling.
std::optional<TensorRef> parse_expert(std::string_view rest, std::int64_t layer, bool mixtral) {
  std::int32_t expert = kSharedExpert;
  if (consume(rest, "experts.")) {
    const std::optional<std::int64_t> index = consume_index(rest);
    if (!index || *index > (std::int64_t{1} << 20)) return std::nullopt;
    expert = static_cast<std::int32_t>(*index);
  } else if (mixtral || !consume(rest, "shared_expert.")) {
    return std::nullopt;
  }
  for (const Linear linear : kMlpLinears) {
    std::string_view tail = rest;
    const bool mixtral_name_only = mixtral && expert >= 0;
    if (consume(tail, mixtral_name_only ? mixtral_name(linear) : linear_name(linear)) &&
        (tail == ".weight" || tail == ".bias"))
      return TensorRef{layer, ModuleId{linear, expert}, std::string(tail.substr(1))};
  }
  return std::nullopt;
}

}  // namespace

std::vector<ModuleId> layer_modules(const ModelConfig& config, const std::int64_t layer) {
  return layer_modules_for(config, config.sparse_layer(layer));
}

std::vector<ModuleId> layer_modules_for(const ModelConfig& config, const bool sparse) {
  std::vector<ModuleId> modules;
  for (const Linear linear : {Linear::Q, Linear::K, Linear::V, Linear::O})
    modules.push_back({linear, kDense});
  if (!sparse) {
    for (const Linear linear : kMlpLinears) modules.push_back({linear, kDense});
    return modules;
  }
  for (std::int64_t e = 0; e < config.moe.num_experts; ++e)
    for (const Linear linear : kMlpLinears)
      modules.push_back({linear, static_cast<std::int32_t>(e)});
  if (config.moe.shared_expert_intermediate > 0)
    for (const Linear linear : kMlpLinears) modules.push_back({linear, kSharedExpert});
  return modules;
}

std::string module_path(const ModelConfig& config, const ModuleId module) {
  if (module.dense()) return str(linear_parent(module.linear), ".", linear_name(module.linear));
  if (module.expert == kSharedExpert) return str("mlp.shared_expert.", linear_name(module.linear));
  if (is_mixtral(config))
    return str("block_sparse_moe.experts.", module.expert, ".", mixtral_name(module.linear));
  return str("mlp.experts.", module.expert, ".", linear_name(module.linear));
}

std::string checkpoint_module_name(const ModelConfig& config, const ModuleId module) {
  return module.dense() ? std::string(linear_name(module.linear)) : module_path(config, module);
}

std::string module_weight_name(const ModelConfig& config, const std::int64_t layer,
                               const ModuleId module) {
  return str(layer_prefix(layer), module_path(config, module), ".weight");
}

std::string module_bias_name(const ModelConfig& config, const std::int64_t layer,
                             const ModuleId module) {
  return str(layer_prefix(layer), module_path(config, module), ".bias");
}

std::string router_path(const ModelConfig& config) {
  return is_mixtral(config) ? "block_sparse_moe.gate.weight" : "mlp.gate.weight";
}

std::string router_name(const ModelConfig& config, const std::int64_t layer) {
  return str(layer_prefix(layer), router_path(config));
}

std::string shared_expert_gate_name(const std::int64_t layer) {
  return str(layer_prefix(layer), kSharedExpertGatePath);
}

std::string_view linear_name(const Linear linear) {
  switch (linear) {
    case Linear::Q:
      return "q_proj";
    case Linear::K:
      return "k_proj";
    case Linear::V:
      return "v_proj";
    case Linear::O:
      return "o_proj";
    case Linear::Gate:
      return "gate_proj";
    case Linear::Up:
      return "up_proj";
    case Linear::Down:
      return "down_proj";
  }
  throw Error("linear_name: invalid Linear value");
}

std::optional<Linear> parse_linear(std::string_view name) {
  for (const Linear linear : kAllLinears) {
    const std::string_view full = linear_name(linear);
    if (name == full || name == full.substr(0, full.size() - 5)) return linear;  // "q" for "q_proj"
  }
  return std::nullopt;
}

LinearInput input_of(Linear linear) {
  switch (linear) {
    case Linear::Q:
    case Linear::K:
    case Linear::V:
      return LinearInput::Attention;
    case Linear::O:
      return LinearInput::AttentionOutput;
    case Linear::Gate:
    case Linear::Up:
      return LinearInput::Mlp;
    case Linear::Down:
      return LinearInput::MlpDown;
  }
  throw Error("invalid linear module");
}

std::string_view linear_parent(const Linear linear) {
  switch (linear) {
    case Linear::Q:
    case Linear::K:
    case Linear::V:
    case Linear::O:
      return "self_attn";
    default:
      return "mlp";
  }
}

std::string linear_weight_name(const std::int64_t layer, const Linear linear) {
  return str(layer_prefix(layer), linear_parent(linear), ".", linear_name(linear), ".weight");
}

std::string linear_bias_name(const std::int64_t layer, const Linear linear) {
  return str(layer_prefix(layer), linear_parent(linear), ".", linear_name(linear), ".bias");
}

std::string input_norm_name(const std::int64_t layer) {
  return str(layer_prefix(layer), "input_layernorm.weight");
}

std::string post_attention_norm_name(const std::int64_t layer) {
  return str(layer_prefix(layer), "post_attention_layernorm.weight");
}

std::string q_norm_name(const std::int64_t layer) {
  return str(layer_prefix(layer), "self_attn.q_norm.weight");
}

std::string k_norm_name(const std::int64_t layer) {
  return str(layer_prefix(layer), "self_attn.k_norm.weight");
}

std::optional<std::int64_t> layer_of_name(std::string_view name) {
  if (!consume(name, kLayerPrefix)) return std::nullopt;
  return consume_index(name);
}

std::optional<TensorRef> parse_tensor_name(std::string_view name) {
  if (name == kEmbedName) return TensorRef{-1, std::nullopt, "embed_tokens"};
  if (name == kFinalNormName) return TensorRef{-1, std::nullopt, "norm"};
  if (name == kLmHeadName) return TensorRef{-1, std::nullopt, "lm_head"};
  if (!consume(name, kLayerPrefix)) return std::nullopt;
  const std::optional<std::int64_t> layer = consume_index(name);
  if (!layer) return std::nullopt;
  for (const std::string_view norm : {"input_layernorm", "post_attention_layernorm"}) {
    if (name.starts_with(norm) && name.substr(norm.size()) == ".weight") {
      return TensorRef{*layer, std::nullopt, std::string(norm)};
    }
  }
  for (const std::string_view norm : {"q_norm", "k_norm"}) {
    std::string_view rest = name;
    if (consume(rest, "self_attn.") && consume(rest, norm) && rest == ".weight")
      return TensorRef{*layer, std::nullopt, std::string(norm)};
  }
  for (const Linear linear : kAllLinears) {
    std::string_view rest = name;
    if (consume(rest, linear_parent(linear)) && consume(rest, ".") &&
        consume(rest, linear_name(linear)) && (rest == ".weight" || rest == ".bias")) {
      return TensorRef{*layer, ModuleId{linear, kDense}, std::string(rest.substr(1))};
    }
  }
  if (name == "mlp.gate.weight" || name == "block_sparse_moe.gate.weight")
    return TensorRef{*layer, std::nullopt, "router"};
  if (name == kSharedExpertGatePath) return TensorRef{*layer, std::nullopt, "shared_expert_gate"};
  std::string_view rest = name;
  if (consume(rest, "mlp.")) return parse_expert(rest, *layer, false);
  if (consume(rest, "block_sparse_moe.")) return parse_expert(rest, *layer, true);
  return std::nullopt;
}

}  // namespace qshard
