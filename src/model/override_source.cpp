// A WeightSource with some tensors replaced in memory (e.g. quantized-dequantized linears).
#include "qshard/model/override_source.hpp"

#include "qshard/core/error.hpp"

namespace qshard {
namespace {

class OverrideSource final : public WeightSource {
 public:
  OverrideSource(const WeightSource& base, std::map<std::string, MatrixF> replacements)
      : base_(base), replacements_(std::move(replacements)) {
    for (const auto& [name, matrix] : replacements_)
      require(base_.contains(name), base_.describe(), ": cannot replace tensor '", name,
              "', which the model does not have");
  }
  const ModelConfig& config() const override { return base_.config(); }
  bool contains(const std::string& name) const override { return base_.contains(name); }
  MatrixF load(const std::string& name) const override {
    const auto it = replacements_.find(name);
    return it != replacements_.end() ? it->second : base_.load(name);
  }
  std::string describe() const override {
    return str(base_.describe(), " with ", replacements_.size(), " replaced tensors");
  }

 private:
  const WeightSource& base_;
  std::map<std::string, MatrixF> replacements_;
};

}  // namespace

std::unique_ptr<WeightSource> with_overrides(const WeightSource& base,
                                             std::map<std::string, MatrixF> replacements) {
  return std::make_unique<OverrideSource>(base, std::move(replacements));
}

}  // namespace qshard
