// A Hugging Face model directory as a WeightSource: config.json + memory-mapped safetensors.
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
  if (!ref->linear) return {c.hidden_size};  // the layer norms
  const auto [rows, cols] = linear_shape(c, *ref->linear);
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
  const TensorView view = model.view(stored);
  const Shape expected = expected_shape(config, name);
  require(expected.empty() || view.shape == expected, directory, ": tensor '", stored,
          "' has shape ", shape_string(view.shape), ", the config implies ",
          shape_string(expected));
  MatrixF m = view.to_matrix();
  for (std::size_t i = 0; i < m.size(); ++i)
    require(std::isfinite(m.data()[i]), directory, ": tensor '", stored,
            "' has a non-finite value at element ", i);
  return m;
}

}  // namespace model_detail

namespace {

class HfSource final : public WeightSource {
 public:
  explicit HfSource(const std::filesystem::path& dir)
      : directory_(dir), config_(parse_model_config(dir / "config.json")), model_(dir) {}
  const ModelConfig& config() const override { return config_; }
  bool contains(const std::string& name) const override {
    return model_.contains(name) || (name == kLmHeadName && config_.tie_word_embeddings);
  }
  MatrixF load(const std::string& name) const override {
    return model_detail::load_float_tensor(model_, config_, directory_, name);
  }
  std::string describe() const override { return str("model ", directory_); }

 private:
  std::filesystem::path directory_;
  ModelConfig config_;
  SafetensorsModel model_;
};

}  // namespace

std::unique_ptr<WeightSource> open_hf_model(const std::filesystem::path& directory) {
  require(std::filesystem::is_directory(directory), "model directory ", directory,
          " does not exist");
  require(std::filesystem::exists(directory / "config.json"), "model directory ", directory,
          " has no config.json");
  if (read_gptq_config(directory)) return open_gptq_model(directory);
  return std::make_unique<HfSource>(directory);
}

}  // namespace qshard
