// Hugging Face tensor names of the LLaMA family and their parsing.
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

}  // namespace

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
      return TensorRef{*layer, linear, std::string(rest.substr(1))};
    }
  }
  return std::nullopt;
}

}  // namespace qshard
