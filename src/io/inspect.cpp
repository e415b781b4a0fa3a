// The printing behind qshard-inspect.
#include "qshard/io/inspect.hpp"

#include <algorithm>
#include <iomanip>
#include <map>
#include <set>

#include "qshard/core/error.hpp"
#include "qshard/io/safetensors.hpp"

namespace qshard {
namespace {

void print_list(std::ostream& out, const std::string& title,
                const std::vector<std::string>& names) {
  if (names.empty()) return;
  out << '\n' << title << " (" << names.size() << "):\n";
  for (const std::string& name : names) out << "  " << name << '\n';
}

}  // namespace

void print_config(std::ostream& out, const ModelConfig& c) {
  const auto line = [&out](const char* key, const auto& value) {
    out << "  " << std::left << std::setw(26) << key << value << '\n';
  };
  out << "config:\n";
  line("model_type", c.model_type);
  line("hidden_size", c.hidden_size);
  line("intermediate_size", c.intermediate_size);
  line("num_hidden_layers", c.num_hidden_layers);
  line("num_attention_heads", c.num_attention_heads);
  line("num_key_value_heads", c.num_key_value_heads);
  line("head_dim", c.head_dim);
  line("vocab_size", c.vocab_size);
  line("max_position_embeddings", c.max_position_embeddings);
  line("rms_norm_eps", c.rms_norm_eps);
  line("rope_theta", c.rope_theta);
  if (c.rope_scaling.type.empty()) {
    line("rope_scaling", "none");
  } else if (c.rope_scaling.type == "llama3") {
    line("rope_scaling", str("llama3 (factor ", c.rope_scaling.factor, ", low_freq_factor ",
                             c.rope_scaling.low_freq_factor, ", high_freq_factor ",
                             c.rope_scaling.high_freq_factor, ", original_max_position_embeddings ",
                             c.rope_scaling.original_max_position_embeddings, ")"));
  } else {
    line("rope_scaling", str(c.rope_scaling.type, " (factor ", c.rope_scaling.factor, ")"));
  }
  line("tie_word_embeddings", c.tie_word_embeddings ? "true" : "false");
  line("attention_bias (q/k/v)", c.attention_bias ? "true" : "false");
  line("o_proj_bias", c.o_proj_bias ? "true" : "false");
  line("mlp_bias", c.mlp_bias ? "true" : "false");
  line("torch_dtype", std::string(torch_dtype_name(c.torch_dtype)));
}

void print_tensor_table(std::ostream& out, const std::vector<TensorRow>& rows) {
  std::size_t name_width = 6, shape_width = 5, dtype_width = 5;
  for (const TensorRow& row : rows) {
    name_width = std::max(name_width, row.name.size());
    shape_width = std::max(shape_width, shape_string(row.shape).size());
    dtype_width = std::max(dtype_width, dtype_name(row.dtype).size());
  }
  const auto columns = [&](const std::string& name, const std::string& shape,
                           const std::string& dtype, const std::string& file) {
    out << std::left << std::setw(static_cast<int>(name_width)) << name << "  "
        << std::setw(static_cast<int>(shape_width)) << shape << "  "
        << std::setw(static_cast<int>(dtype_width)) << dtype << "  " << file << '\n';
  };
  columns("tensor", "shape", "dtype", "file");
  std::int64_t parameters = 0;
  std::int64_t bytes = 0;
  for (const TensorRow& row : rows) {
    columns(row.name, shape_string(row.shape), std::string(dtype_name(row.dtype)), row.file);
    const std::int64_t count = element_count(row.shape);
    parameters += count;
    bytes += count * static_cast<std::int64_t>(dtype_size(row.dtype));
  }
  out << "\ntotal: " << rows.size() << " tensors, " << parameters << " parameters, " << bytes
      << " bytes\n";
}

void print_tensor_summary(std::ostream& out, const std::vector<TensorRow>& rows,
                          std::int64_t stored_layers) {
  struct Totals {
    std::int64_t tensors = 0, parameters = 0, bytes = 0;
  };
  Totals all;
  std::map<std::string, Totals> by_dtype;
  std::set<std::string> files;
  for (const TensorRow& row : rows) {
    const std::int64_t count = element_count(row.shape);
    const std::int64_t bytes = count * static_cast<std::int64_t>(dtype_size(row.dtype));
    for (Totals* t : {&all, &by_dtype[std::string(dtype_name(row.dtype))]}) {
      t->tensors += 1;
      t->parameters += count;
      t->bytes += bytes;
    }
    files.insert(row.file);
  }
  out << "total: " << all.tensors << " tensors, " << all.parameters << " parameters, " << all.bytes
      << " bytes\n";
  for (const auto& [dtype, t] : by_dtype)
    out << "  " << std::left << std::setw(6) << dtype << t.tensors << " tensors, " << t.bytes
        << " bytes\n";
  out << "  files: " << files.size() << ", decoder layers: " << stored_layers << '\n'
      << "(--tensors lists every tensor)\n";
}

std::vector<std::string> expected_tensor_names(const ModelConfig& c) {
  std::vector<std::string> names{std::string(kEmbedName)};
  for (std::int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
    names.push_back(input_norm_name(layer));
    names.push_back(post_attention_norm_name(layer));
    if (c.qk_norm) {
      names.push_back(q_norm_name(layer));
      names.push_back(k_norm_name(layer));
    }
    if (c.sparse_layer(layer)) {
      names.push_back(router_name(c, layer));
      if (c.moe.shared_expert_intermediate > 0) names.push_back(shared_expert_gate_name(layer));
    }
    for (const ModuleId module : layer_modules(c, layer)) {
      names.push_back(module_weight_name(c, layer, module));
      const Linear linear = module.linear;
      const bool qkv = linear == Linear::Q || linear == Linear::K || linear == Linear::V;
      const bool bias =
          module.dense() && ((qkv && c.attention_bias) || (linear == Linear::O && c.o_proj_bias) ||
                             (linear_parent(linear) == "mlp" && c.mlp_bias));
      if (bias) names.push_back(module_bias_name(c, layer, module));
    }
  }
  names.emplace_back(kFinalNormName);
  if (!c.tie_word_embeddings) names.emplace_back(kLmHeadName);
  return names;
}

void inspect_model(const std::filesystem::path& directory, std::ostream& out, bool list_tensors) {
  const ModelConfig config = parse_model_config(directory / "config.json");
  const SafetensorsModel model(directory);
  model.check_all();

  const std::optional<GptqConfig> gptq = read_gptq_config(directory);
  out << "model: " << directory.string() << "\n\n";
  print_config(out, config);
  out << '\n';
  if (gptq) print_gptq_summary(out, *gptq, model, config);

  std::vector<TensorRow> rows;
  std::vector<std::string> unrecognised;
  for (const std::string& name : model.names()) {
    const TensorView view = model.view(name);
    rows.push_back({name, view.shape, view.dtype, model.file_of(name).filename().string()});
    const std::string packed = gptq ? packed_weight_name(name) : std::string();
    if (!parse_tensor_name(name) && (packed.empty() || !parse_tensor_name(packed)))
      unrecognised.push_back(name);
  }
  // Layers the files hold bound the list (a config may claim thousands more).
  std::int64_t stored_layers = 0;
  for (const std::string& name : model.names())
    if (const auto layer = layer_of_name(name)) stored_layers = std::max(stored_layers, *layer + 1);
  if (list_tensors)
    print_tensor_table(out, rows);
  else
    print_tensor_summary(out, rows, stored_layers);
  ModelConfig listed = config;
  if (config.num_hidden_layers > stored_layers) {
    out << "\nconfig.json's num_hidden_layers " << config.num_hidden_layers << " is more than the "
        << stored_layers << " decoder layers the weight files hold\n";
    listed.num_hidden_layers = stored_layers;
  }
  std::vector<std::string> missing;
  for (const std::string& name : expected_tensor_names(listed)) {
    const bool packed = gptq && name.ends_with(".weight") &&
                        model.contains(name.substr(0, name.size() - 7) + ".qweight");
    if (!model.contains(name) && !packed) missing.push_back(name);
  }
  print_list(out, "missing tensors the config expects", missing);
  print_list(out, "tensors with unrecognised names", unrecognised);
}

}  // namespace qshard
