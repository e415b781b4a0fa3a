// open_model: the one place a model argument ("synthetic:NAME" or a directory) becomes a source.
#include <filesystem>
#include <string_view>

#include "qshard/core/error.hpp"
#include "qshard/model/synthetic_source.hpp"
#include "qshard/model/weight_source.hpp"

namespace qshard {

std::unique_ptr<WeightSource> open_model(const std::string& spec, std::uint64_t seed,
                                         const ModelOpenOptions& options) {
  constexpr std::string_view kPrefix = "synthetic:";
  if (spec.starts_with(kPrefix)) return open_synthetic_model(spec.substr(kPrefix.size()), seed);
  require(std::filesystem::is_directory(spec), "model directory '", spec,
          "' does not exist (give a Hugging Face model directory or synthetic:NAME)");
  return open_hf_model(spec, options);
}

}  // namespace qshard
