#include "qshard/model/checkpoint_source.hpp"

#include <optional>

#include "qshard/core/error.hpp"
#include "qshard/io/checkpoint.hpp"

namespace qshard {
namespace {

class CheckpointSource final : public WeightSource {
 public:
  explicit CheckpointSource(const std::filesystem::path& path) : checkpoint_(path) {}
  const ModelConfig& config() const override { return checkpoint_.model_config(); }
  bool contains(const std::string& name) const override {
    const auto ref = parse_tensor_name(name);
    if (!ref) return false;
    if (ref->layer < 0) return checkpoint_.has_model_tensor(name);
    if (ref->layer >= checkpoint_.layer_count()) return false;
    if (ref->module && ref->field == "bias")
      return !layer(ref->layer).module(*ref->module).bias.empty();
    if (ref->field == "router") return !layer(ref->layer).router.empty();
    if (ref->field == "shared_expert_gate") return !layer(ref->layer).shared_expert_gate.empty();
    return true;
  }
  MatrixF load(const std::string& name) const override {
    const auto ref = parse_tensor_name(name);
    require(ref.has_value(), describe(), ": unknown tensor name '", name, "'");
    if (ref->layer < 0) {
      if (name == kLmHeadName && !checkpoint_.has_model_tensor(name) &&
          config().tie_word_embeddings)
        return checkpoint_.model_tensor(std::string(kEmbedName));
      return checkpoint_.model_tensor(name);
    }
    const LayerRecord& record = layer(ref->layer);
    if (!ref->module) {
      if (name == input_norm_name(ref->layer)) return record.input_norm;
      if (ref->field == "router" && !record.router.empty()) return record.router;
      if (ref->field == "shared_expert_gate" && !record.shared_expert_gate.empty())
        return record.shared_expert_gate;
      if (name == post_attention_norm_name(ref->layer)) return record.post_norm;
      if (name == q_norm_name(ref->layer) && !record.q_norm.empty()) return record.q_norm;
      if (name == k_norm_name(ref->layer) && !record.k_norm.empty()) return record.k_norm;
      throw Error(str(describe(), ": no tensor '", name, "'"));
    }
    const ModuleRecord& m = record.module(*ref->module);
    if (ref->field == "bias") {
      require(!m.bias.empty(), describe(), ": ", name, " has no bias");
      return MatrixF(1, static_cast<std::int64_t>(m.bias.size()), m.bias);
    }
    return m.method == "none" ? m.float_weight : m.weight.dequantize();
  }
  std::string describe() const override { return str("checkpoint ", checkpoint_.path()); }

 private:
  // The last layer read is cached: LayerWeights::load asks for its tensors one by one.
  const LayerRecord& layer(std::int64_t index) const {
    if (!cached_ || cached_->index != index) cached_ = checkpoint_.layer(index);
    return *cached_;
  }

  Checkpoint checkpoint_;
  mutable std::optional<LayerRecord> cached_;
};

}  // namespace

std::unique_ptr<WeightSource> open_checkpoint_model(const std::filesystem::path& path) {
  return std::make_unique<CheckpointSource>(path);
}

}  // namespace qshard
