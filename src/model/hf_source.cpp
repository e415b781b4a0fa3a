// A Hugging Face model directory as a WeightSource: config.json + memory-mapped safetensors.
#include <algorithm>
#include <cmath>

#include "hf_tensors.hpp"
#include "qshard/core/error.hpp"
#include "qshard/io/gptq_config.hpp"
#include "qshard/io/safetensors.hpp"
#include "qshard/model/gptq_source.hpp"
#include "qshard/model/weight_source.hpp"

namespace qshard {

namespace model_detail {

Shape expected_shape(const ModelConfig& c, const std::string& name) {
  const auto ref = parse_tensor_name(name);
  if (!ref) return {};
  if (name == kEmbedName || name == kLmHeadName) return {c.vocab_size, c.hidden_size};
  if (name == kFinalNormName) return {c.hidden_size};
  if (ref->field == "q_norm" || ref->field == "k_norm") return {c.head_dim};  // per head
  if (ref->field == "router") return {c.moe.num_experts, c.hidden_size};
  if (ref->field == "shared_expert_gate") return {1, c.hidden_size};
  if (!ref->module) return {c.hidden_size};  // the layer norms
  const auto [rows, cols] = module_shape(c, *ref->module);
  if (ref->field == "bias") return {rows};
  return {rows, cols};
}

MatrixF load_float_tensor(const SafetensorsModel& model, const ModelConfig& config,
                          const std::filesystem::path& directory, const std::string& name) {
  const std::string stored =
      name == kLmHeadName && !model.contains(name) && config.tie_word_embeddings
          ? std::string(kEmbedName)
          : name;
  require(model.contains(stored), directory, ": tensor '", name, "' is missing");
  const TensorView view = model.view(stored);  // fails naming the file if it was truncated
  const std::filesystem::path file = model.file_of(stored);
  require(is_float(view.dtype), file, ": tensor '", stored, "' is ", dtype_name(view.dtype),
          ": weights must be floating point");
  const Shape expected = expected_shape(config, name);
  require(expected.empty() || view.shape == expected, file, ": tensor '", stored, "' has shape ",
          shape_string(view.shape), ", the config implies ", shape_string(expected));
  MatrixF m = view.to_matrix();
  const float* const values = m.data();
  const auto bad =
      std::find_if_not(values, values + m.size(), [](float v) { return std::isfinite(v); });
  if (bad != values + m.size()) {
    const auto at = static_cast<std::int64_t>(bad - values);
    throw Error(str(file, ": tensor '", stored, "' has a non-finite value (", *bad, ") at row ",
                    at / m.cols(), ", column ", at % m.cols()));
  }
  return m;
}

}  // namespace model_detail

namespace {

class HfSource final : public WeightSource {
 public:
  HfSource(const std::filesystem::path& dir, const ModelOpenOptions& options)
      : directory_(dir),
        config_(parse_model_config(dir / "config.json")),
        model_(dir),
        used_(
            model_detail::validate_hf_tensors(model_, config_, dir, options.allow_extra_tensors)) {}
  const ModelConfig& config() const override { return config_; }
  // Only the tensors the config accounts for: ignored extra tensors (an undeclared bias) are not.
  bool contains(const std::string& name) const override {
    return used_.contains(name) || (name == kLmHeadName && config_.tie_word_embeddings);
  }
  MatrixF load(const std::string& name) const override {
    return model_detail::load_float_tensor(model_, config_, directory_, name);
  }
  std::string describe() const override { return str("model ", directory_); }

 private:
  std::filesystem::path directory_;
  ModelConfig config_;
  SafetensorsModel model_;
  std::set<std::string> used_;
};

}  // namespace

std::unique_ptr<WeightSource> open_hf_model(const std::filesystem::path& directory,
                                            const ModelOpenOptions& options) {
  require(std::filesystem::is_directory(directory), "model directory ", directory,
          " does not exist");
  require(std::filesystem::exists(directory / "config.json"), "model directory ", directory,
          " has no config.json");
  if (read_gptq_config(directory)) return open_gptq_model(directory);
  return std::make_unique<HfSource>(directory, options);
}

}  // namespace qshard
