// config.json <-> ModelConfig for the LLaMA family (llama, mistral, qwen2, qwen3) and its
// mixture-of-experts relatives (mixtral, qwen2_moe, qwen3_moe).
#include "qshard/io/model_config.hpp"

#include <array>

#include "qshard/core/error.hpp"
#include "qshard/core/text_file.hpp"
#include "strict_json.hpp"

namespace qshard {
namespace {

using nlohmann::json;

struct Family {
  std::string_view model_type;
  std::string_view architecture;
};
constexpr std::array<Family, 7> kFamilies = {{{"llama", "LlamaForCausalLM"},
                                              {"mistral", "MistralForCausalLM"},
                                              {"qwen2", "Qwen2ForCausalLM"},
                                              {"qwen3", "Qwen3ForCausalLM"},
                                              {"mixtral", "MixtralForCausalLM"},
                                              {"qwen2_moe", "Qwen2MoeForCausalLM"},
                                              {"qwen3_moe", "Qwen3MoeForCausalLM"}}};

// "llama, mistral, ..." or "LlamaForCausalLM, ...": for errors.
std::string supported(bool architectures) {
  std::string out;
  for (const Family& f : kFamilies)
    out += str(out.empty() ? "" : ", ", architectures ? f.architecture : f.model_type);
  return out;
}

const Family* family_by_type(std::string_view model_type) {
  for (const Family& f : kFamilies) {
    if (f.model_type == model_type) return &f;
  }
  return nullptr;
}

const Family* family_by_architecture(std::string_view architecture) {
  for (const Family& f : kFamilies) {
    if (f.architecture == architecture) return &f;
  }
  return nullptr;
}

// Typed access to the fields of one config.json, every error naming the field and the file.
class Fields {
 public:
  Fields(const json& root, std::string_view source) : root_(root), source_(source) {}

  // A present, non-null field.
  const json* find(const char* name) const {
    const auto it = root_.find(name);
    return it == root_.end() || it->is_null() ? nullptr : &*it;
  }
  std::int64_t integer(const char* name) const {
    const json* value = find(name);
    require(value != nullptr, source_, ": missing required field '", name, "'");
    return as_integer(*value, name);
  }
  std::int64_t integer(const char* name, std::int64_t fallback) const {
    const json* value = find(name);
    return value ? as_integer(*value, name) : fallback;
  }
  double number(const char* name, double fallback) const {
    const json* value = find(name);
    if (!value) return fallback;
    require(value->is_number(), source_, ": field '", name, "' must be a number, not ",
            value->type_name());
    return value->get<double>();
  }
  bool boolean(const char* name, bool fallback) const {
    const json* value = find(name);
    if (!value) return fallback;
    require(value->is_boolean(), source_, ": field '", name, "' must be true or false, not ",
            value->dump());
    return value->get<bool>();
  }
  std::string string(const char* name, std::string fallback) const {
    const json* value = find(name);
    if (!value) return fallback;
    require(value->is_string(), source_, ": field '", name, "' must be a string, not ",
            value->type_name());
    return value->get<std::string>();
  }

 private:
  std::int64_t as_integer(const json& value, const char* name) const {
    require(value.is_number_integer(), source_, ": field '", name, "' must be an integer, not ",
            value.dump());
    return value.get<std::int64_t>();
  }
  const json& root_;
  std::string_view source_;
};

// model_type and architectures must name one supported family, and agree when both are given.
std::string resolve_model_type(const json& root, std::string_view source) {
  const Fields fields(root, source);
  const std::string model_type = fields.string("model_type", "");
  const Family* family = nullptr;
  if (!model_type.empty()) {
    family = family_by_type(model_type);
    require(family != nullptr, source, ": unsupported model_type '", model_type,
            "' (supported: ", supported(false), ")");
  }
  if (const json* architectures = fields.find("architectures")) {
    require(architectures->is_array(), source, ": field 'architectures' must be an array");
    for (const json& item : *architectures) {
      require(item.is_string(), source, ": 'architectures' must hold strings, found ", item.dump());
      const std::string name = item.get<std::string>();
      const Family* by_architecture = family_by_architecture(name);
      require(by_architecture != nullptr, source, ": unsupported architecture '", name,
              "' (supported: ", supported(true), ")");
      if (family != nullptr && family != by_architecture) {
        throw Error(str(source, ": architecture '", name, "' does not match model_type '",
                        family->model_type, "'"));
      }
      family = by_architecture;
    }
  }
  require(family != nullptr, source, ": missing required field 'model_type' (or 'architectures')");
  return std::string(family->model_type);
}

RopeScaling parse_rope_scaling(const json& value, std::string_view source) {
  RopeScaling out;
  require(value.is_object(), source, ": field 'rope_scaling' must be an object or null, not ",
          value.type_name());
  const std::string where = str(source, " (rope_scaling)");
  const Fields fields(value, where);
  // Newer configs spell the kind "rope_type", older ones "type".
  out.type = fields.string("rope_type", fields.string("type", ""));
  require(!out.type.empty(), source, ": field 'rope_scaling' has no 'rope_type'");
  if (out.type == "default") return RopeScaling{};  // explicitly no scaling
  require(out.type == "llama3" || out.type == "linear", source, ": unsupported rope_scaling type '",
          out.type, "' (supported: llama3, linear)");
  const json* factor = fields.find("factor");
  require(factor != nullptr, where, ": missing required field 'factor'");
  out.factor = fields.number("factor", 1.0);
  if (out.type == "llama3") {
    for (const char* name : {"low_freq_factor", "high_freq_factor"}) {
      require(fields.find(name) != nullptr, where, ": missing required field '", name, "'");
    }
    out.low_freq_factor = fields.number("low_freq_factor", 1.0);
    out.high_freq_factor = fields.number("high_freq_factor", 4.0);
    out.original_max_position_embeddings = fields.integer("original_max_position_embeddings");
  }
  return out;
}

// The mixture-of-experts fields of the mixtral, qwen2_moe and qwen3_moe families.
MoeConfig parse_moe(const json& root, const ModelConfig& c, std::string_view source) {
  const Fields fields(root, source);
  MoeConfig moe;
  // Mixtral calls it num_local_experts; Qwen num_experts (transformers 5 saves Qwen3-MoE's as
  // num_local_experts too).
  const bool mixtral = c.model_type == "mixtral";
  const char* experts =
      fields.find("num_experts") != nullptr && !mixtral ? "num_experts" : "num_local_experts";
  moe.num_experts = fields.integer(experts);
  moe.experts_per_token = fields.integer("num_experts_per_tok");
  if (mixtral) {
    moe.expert_intermediate = c.intermediate_size;
    moe.norm_topk_prob = true;  // Mixtral always renormalises the chosen probabilities
    return moe;
  }
  moe.expert_intermediate = fields.integer("moe_intermediate_size");
  moe.norm_topk_prob = fields.boolean("norm_topk_prob", false);
  moe.decoder_sparse_step = fields.integer("decoder_sparse_step", 1);
  if (c.model_type == "qwen2_moe")
    moe.shared_expert_intermediate = fields.integer("shared_expert_intermediate_size");
  if (const json* dense = fields.find("mlp_only_layers")) {
    require(dense->is_array(), source, ": field 'mlp_only_layers' must be an array of integers");
    for (const json& layer : *dense) {
      require(layer.is_number_integer(), source, ": 'mlp_only_layers' must hold integers, found ",
              layer.dump());
      moe.mlp_only_layers.push_back(layer.get<std::int64_t>());
    }
  }
  return moe;
}

std::string architecture_of(std::string_view model_type) {
  const Family* family = family_by_type(model_type);
  require(family != nullptr, "to_json: unsupported model_type '", model_type, "'");
  return std::string(family->architecture);
}

}  // namespace

void ModelConfig::validate(const std::string_view source) const {
  // Positive, and at most a bound far above every real model (Llama-3-405B: hidden 16384,
  // intermediate 53248, 126 layers, 128 heads; vocabularies of 256k; contexts of 10M), so that an
  // absurd value is refused here rather than allocated for (issue 14).
  const auto size = [&](std::int64_t value, const char* name, std::int64_t most) {
    require(value > 0, source, ": ", name, " must be positive, got ", value);
    require(value <= most, source, ": ", name, " is ", value, "; qshard accepts at most ", most,
            " (far beyond any real model: is config.json corrupt?)");
  };
  size(hidden_size, "hidden_size", kMaxWidth);
  size(intermediate_size, "intermediate_size", kMaxWidth);
  size(num_hidden_layers, "num_hidden_layers", kMaxLayers);
  size(num_attention_heads, "num_attention_heads", kMaxHeads);
  size(num_key_value_heads, "num_key_value_heads", kMaxHeads);
  size(head_dim, "head_dim", kMaxWidth);
  require(q_dim() <= kMaxWidth, source, ": num_attention_heads x head_dim (", num_attention_heads,
          " x ", head_dim, ") is beyond qshard's limit of ", kMaxWidth, " features");
  size(vocab_size, "vocab_size", kMaxVocab);
  size(max_position_embeddings, "max_position_embeddings", kMaxPositions);
  require(num_attention_heads % num_key_value_heads == 0, source, ": num_attention_heads (",
          num_attention_heads, ") is not divisible by num_key_value_heads (", num_key_value_heads,
          ")");
  require(rms_norm_eps > 0.0, source, ": rms_norm_eps must be positive, got ", rms_norm_eps);
  require(rope_theta > 0.0, source, ": rope_theta must be positive, got ", rope_theta);
  if (!rope_scaling.type.empty()) {
    require(rope_scaling.factor > 0.0, source, ": rope_scaling factor must be positive, got ",
            rope_scaling.factor);
  }
  if (rope_scaling.type == "llama3") {
    require(rope_scaling.high_freq_factor > rope_scaling.low_freq_factor, source,
            ": rope_scaling high_freq_factor (", rope_scaling.high_freq_factor,
            ") must exceed low_freq_factor (", rope_scaling.low_freq_factor, ")");
    require(rope_scaling.original_max_position_embeddings > 0, source,
            ": rope_scaling original_max_position_embeddings must be positive");
  }
  require(is_float(torch_dtype) && torch_dtype != DType::F64, source,
          ": torch_dtype must be float32, float16 or bfloat16");
  const bool moe_family = model_type == "mixtral" || model_type.ends_with("_moe");
  require(moe_family == is_moe(), source, ": model_type '", model_type, "' ",
          moe_family ? "needs a positive number of experts" : "has no experts");
  if (is_moe()) {
    size(moe.num_experts, "the number of experts", kMaxExperts);
    size(moe.experts_per_token, "num_experts_per_tok", moe.num_experts);
    size(moe.expert_intermediate, "the experts' intermediate size", kMaxWidth);
    require(moe.shared_expert_intermediate >= 0 && moe.shared_expert_intermediate <= kMaxWidth,
            source, ": shared_expert_intermediate_size is ", moe.shared_expert_intermediate);
    size(moe.decoder_sparse_step, "decoder_sparse_step", kMaxLayers);
    for (const std::int64_t layer : moe.mlp_only_layers)
      require(layer >= 0 && layer < num_hidden_layers, source, ": mlp_only_layers holds ", layer,
              ", not a layer of ", num_hidden_layers);
  }
}

bool ModelConfig::sparse_layer(const std::int64_t layer) const {
  if (!is_moe()) return false;
  for (const std::int64_t dense : moe.mlp_only_layers)
    if (dense == layer) return false;
  return (layer + 1) % moe.decoder_sparse_step == 0;
}

ModelConfig parse_model_config_text(const std::string_view json_text,
                                    const std::string_view source) {
  const json root = io_detail::parse_json_strict(json_text, source);
  require(root.is_object(), source, ": config must be a JSON object");
  const Fields fields(root, source);

  ModelConfig c;
  c.model_type = resolve_model_type(root, source);
  c.hidden_size = fields.integer("hidden_size");
  c.intermediate_size = fields.integer("intermediate_size");
  c.num_hidden_layers = fields.integer("num_hidden_layers");
  c.num_attention_heads = fields.integer("num_attention_heads");
  c.vocab_size = fields.integer("vocab_size");
  require(c.num_attention_heads > 0, source, ": num_attention_heads must be positive, got ",
          c.num_attention_heads);
  c.num_key_value_heads = fields.integer("num_key_value_heads", c.num_attention_heads);
  if (fields.find("head_dim") == nullptr) {
    require(c.hidden_size % c.num_attention_heads == 0, source, ": hidden_size (", c.hidden_size,
            ") is not divisible by num_attention_heads (", c.num_attention_heads,
            ") and no head_dim is given");
  }
  c.head_dim = fields.integer("head_dim", c.hidden_size / c.num_attention_heads);
  c.max_position_embeddings = fields.integer("max_position_embeddings", c.max_position_embeddings);
  c.rms_norm_eps = fields.number("rms_norm_eps", c.rms_norm_eps);
  c.rope_theta = fields.number("rope_theta", c.rope_theta);
  if (const json* scaling = fields.find("rope_scaling")) {
    c.rope_scaling = parse_rope_scaling(*scaling, source);
  }
  // transformers 5 writes rope_theta and the scaling into one object, rope_parameters (a model it
  // saved has no top-level rope_theta: reading only that one silently gave the default 10000).
  if (const json* parameters = fields.find("rope_parameters");
      parameters != nullptr && !parameters->is_null()) {
    require(parameters->is_object(), source,
            ": field 'rope_parameters' must be an object or null, not ", parameters->type_name());
    const Fields rope(*parameters, str(source, " (rope_parameters)"));
    const double theta = rope.number("rope_theta", c.rope_theta);
    require(fields.find("rope_theta") == nullptr || theta == c.rope_theta, source, ": rope_theta (",
            c.rope_theta, ") and rope_parameters.rope_theta (", theta, ") differ");
    c.rope_theta = theta;
    const json* scaling = fields.find("rope_scaling");
    const bool has_type = rope.find("rope_type") != nullptr || rope.find("type") != nullptr;
    if (has_type && (scaling == nullptr || scaling->is_null()))
      c.rope_scaling = parse_rope_scaling(*parameters, source);
  }
  c.tie_word_embeddings = fields.boolean("tie_word_embeddings", false);
  if (c.model_type == "qwen2" || c.model_type == "qwen2_moe") {
    // Qwen2 always has q/k/v biases and never an o_proj bias (transformers 5 may say qkv_bias)
    c.attention_bias = fields.boolean("qkv_bias", true);
    c.o_proj_bias = false;
  } else if (c.model_type == "llama") {
    c.attention_bias = fields.boolean("attention_bias", false);
    c.o_proj_bias = c.attention_bias;
    c.mlp_bias = fields.boolean("mlp_bias", false);
  } else if (c.model_type == "qwen3" || c.model_type == "qwen3_moe") {
    // q/k/v and o share attention_bias; q/k RMSNorm per head
    c.attention_bias = fields.boolean("attention_bias", false);
    c.o_proj_bias = c.attention_bias;
    c.qk_norm = true;
  }
  if (c.model_type == "mixtral" || c.model_type.ends_with("_moe"))
    c.moe = parse_moe(root, c, source);
  // Qwen2/3 can window some layers' attention; qshard's attention is full causal attention.
  require(!fields.boolean("use_sliding_window", false), source,
          ": field 'use_sliding_window' is true: sliding-window attention is not supported");
  try {
    // transformers 5 spells it "dtype".
    c.torch_dtype =
        parse_torch_dtype(fields.string("torch_dtype", fields.string("dtype", "float32")));
  } catch (const Error& e) {
    throw Error(str(source, ": field 'torch_dtype': ", e.what()));
  }
  c.validate(source);
  return c;
}

ModelConfig parse_model_config(const std::filesystem::path& config_json) {
  return parse_model_config_text(read_text_file(config_json), config_json.string());
}

std::string to_json(const ModelConfig& c) {
  json root = {
      {"architectures", {architecture_of(c.model_type)}},
      {"model_type", c.model_type},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_hidden_layers", c.num_hidden_layers},
      {"num_attention_heads", c.num_attention_heads},
      {"num_key_value_heads", c.num_key_value_heads},
      {"head_dim", c.head_dim},
      {"vocab_size", c.vocab_size},
      {"max_position_embeddings", c.max_position_embeddings},
      {"rms_norm_eps", c.rms_norm_eps},
      {"rope_theta", c.rope_theta},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"hidden_act", "silu"},
      {"torch_dtype", torch_dtype_name(c.torch_dtype)},
  };
  if (c.model_type == "llama") {
    root["attention_bias"] = c.attention_bias;
    root["mlp_bias"] = c.mlp_bias;
  }
  if (c.model_type == "qwen3" || c.model_type == "qwen3_moe")
    root["attention_bias"] = c.attention_bias;
  if (c.model_type == "mixtral") {
    root["num_local_experts"] = c.moe.num_experts;
    root["num_experts_per_tok"] = c.moe.experts_per_token;
  } else if (c.is_moe()) {
    root["num_experts"] = c.moe.num_experts;
    root["num_experts_per_tok"] = c.moe.experts_per_token;
    root["moe_intermediate_size"] = c.moe.expert_intermediate;
    root["norm_topk_prob"] = c.moe.norm_topk_prob;
    root["decoder_sparse_step"] = c.moe.decoder_sparse_step;
    root["mlp_only_layers"] = c.moe.mlp_only_layers;
    if (c.model_type == "qwen2_moe")
      root["shared_expert_intermediate_size"] = c.moe.shared_expert_intermediate;
  }
  if (c.rope_scaling.type.empty()) {
    root["rope_scaling"] = nullptr;
  } else if (c.rope_scaling.type == "llama3") {
    root["rope_scaling"] = {
        {"rope_type", "llama3"},
        {"factor", c.rope_scaling.factor},
        {"low_freq_factor", c.rope_scaling.low_freq_factor},
        {"high_freq_factor", c.rope_scaling.high_freq_factor},
        {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}};
  } else {
    root["rope_scaling"] = {{"rope_type", c.rope_scaling.type}, {"factor", c.rope_scaling.factor}};
  }
  return root.dump(2) + "\n";
}

std::pair<std::int64_t, std::int64_t> module_shape(const ModelConfig& c, const ModuleId module) {
  if (module.dense()) return linear_shape(c, module.linear);
  const std::int64_t width =
      module.expert == kSharedExpert ? c.moe.shared_expert_intermediate : c.moe.expert_intermediate;
  require(
      module.linear == Linear::Gate || module.linear == Linear::Up || module.linear == Linear::Down,
      "an expert has no ", linear_name(module.linear));
  if (module.linear == Linear::Down) return {c.hidden_size, width};
  return {width, c.hidden_size};
}

std::pair<std::int64_t, std::int64_t> linear_shape(const ModelConfig& c, Linear linear) {
  switch (linear) {
    case Linear::Q:
      return {c.q_dim(), c.hidden_size};
    case Linear::K:
    case Linear::V:
      return {c.kv_dim(), c.hidden_size};
    case Linear::O:
      return {c.hidden_size, c.q_dim()};
    case Linear::Gate:
    case Linear::Up:
      return {c.intermediate_size, c.hidden_size};
    case Linear::Down:
      return {c.hidden_size, c.intermediate_size};
  }
  throw Error("invalid linear module");
}

}  // namespace qshard
