// Whole-model validation of a Hugging Face directory at start-up: what the config implies against
// what the safetensors files hold, before any tensor's data is read.
#include <algorithm>

#include "hf_tensors.hpp"
#include "qshard/core/error.hpp"
#include "qshard/io/inspect.hpp"

namespace qshard::model_detail {
namespace {

// Decoder layers the files hold tensors of (the highest "model.layers.N." index + 1).
std::int64_t layers_in_files(const std::vector<std::string>& names) {
  std::int64_t layers = 0;
  for (const std::string& name : names)
    if (const auto layer = layer_of_name(name)) layers = std::max(layers, *layer + 1);
  return layers;
}

bool is_weight_dtype(DType dtype) {
  return dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16;
}

// A present tensor with a floating-point dtype and the shape the config implies.
void check_tensor(const SafetensorsModel& model, const ModelConfig& config,
                  const std::string& name) {
  const TensorView view = model.view(name);  // opens its shard: offsets checked against the file
  const std::filesystem::path file = model.file_of(name);
  require(is_weight_dtype(view.dtype), file, ": tensor '", name, "' is ", dtype_name(view.dtype),
          ": weights must be F32, F16 or BF16");
  const Shape expected = expected_shape(config, name);
  require(view.shape == expected, file, ": tensor '", name, "' has shape ",
          shape_string(view.shape), ", the config implies ", shape_string(expected));
}

std::string quoted_list(const std::vector<std::string>& names, std::size_t most) {
  std::string out;
  for (std::size_t i = 0; i < std::min(names.size(), most); ++i)
    out += str(i ? ", '" : "'", names[i], "'");
  if (names.size() > most) out += str(" and ", names.size() - most, " more");
  return out;
}

}  // namespace

std::int64_t check_stored_layers(const SafetensorsModel& model, const ModelConfig& config,
                                 const std::filesystem::path& directory) {
  const std::int64_t stored = layers_in_files(model.names());
  require(config.num_hidden_layers <= stored, directory / "config.json", ": num_hidden_layers is ",
          config.num_hidden_layers, " but the weight files hold ", stored, " decoder layers");
  return stored;
}

std::set<std::string> validate_hf_tensors(const SafetensorsModel& model, const ModelConfig& config,
                                          const std::filesystem::path& directory,
                                          bool allow_extra_tensors) {
  model.check_all();  // every shard opened: headers, offsets and the index cross-checked
  const std::vector<std::string> names = model.names();

  const std::int64_t stored_layers = check_stored_layers(model, config, directory);

  std::set<std::string> accepted;
  for (const std::string& name : expected_tensor_names(config)) {
    const bool head = name == kLmHeadName;
    require(model.contains(name), directory, ": tensor '", name, "' is missing",
            head ? " (or config.json should say tie_word_embeddings: true)" : "");
    check_tensor(model, config, name);
    accepted.insert(name);
  }
  // A tied head may still be stored (then it is the one used).
  if (config.tie_word_embeddings && model.contains(std::string(kLmHeadName))) {
    check_tensor(model, config, std::string(kLmHeadName));
    accepted.emplace(kLmHeadName);
  }

  std::vector<std::string> extra;
  for (const std::string& name : names)
    if (!accepted.contains(name)) extra.push_back(name);
  if (!extra.empty() && !allow_extra_tensors) {
    const std::string layers =
        stored_layers > config.num_hidden_layers
            ? str(" (the weight files hold ", stored_layers,
                  " decoder layers but config.json's num_hidden_layers is ",
                  config.num_hidden_layers, ": the job would use a truncated model)")
            : "";
    throw Error(str(directory, ": ", extra.size(),
                    " tensor(s) that config.json does not account for", layers, ": ",
                    quoted_list(extra, 5),
                    "; fix config.json, or give --allow-extra-tensors to ignore them"));
  }
  return accepted;
}

}  // namespace qshard::model_detail
