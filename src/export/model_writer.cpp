#include "qshard/export/model_writer.hpp"

#include <fstream>
#include <optional>

#include "qshard/core/error.hpp"
#include "qshard/export/shard_writer.hpp"
#include "qshard/export/staging_directory.hpp"
#include "qshard/io/inspect.hpp"

namespace qshard {
namespace {

// Norm weights and biases are 1-D in a Hugging Face checkpoint, everything else 2-D (a router of
// one expert and Qwen2-MoE's shared-expert gate [1, hidden] too).
bool is_vector(const std::string& name) {
  const std::optional<TensorRef> ref = parse_tensor_name(name);
  return ref.has_value() && (ref->field == "bias" || ref->field == "norm" ||
                             ref->field.ends_with("layernorm") || ref->field.ends_with("_norm"));
}

}  // namespace

ModelWriteResult write_hf_model(const WeightSource& source, const std::filesystem::path& directory,
                                std::uint64_t max_shard_bytes, bool force) {
  const ModelConfig& config = source.config();
  const DType dtype = config.torch_dtype;
  require(dtype == DType::BF16 || dtype == DType::F16 || dtype == DType::F32,
          "write_hf_model: cannot store weights as ", dtype_name(dtype));
  StagingDirectory staging(directory, force);
  ShardWriter shards(staging.path(), max_shard_bytes);
  for (const std::string& name : expected_tensor_names(config)) {
    const MatrixF values = source.load(name);
    const Shape shape =
        is_vector(name) ? Shape{values.cols()} : Shape{values.rows(), values.cols()};
    shards.add(name, Tensor::from_f32(values.values(), shape, dtype));
  }
  shards.finish();
  {
    std::ofstream out(staging.path() / "config.json");
    out << to_json(config) << '\n';
    require(out.good(), "cannot write ", staging.path() / "config.json");
  }
  staging.commit();
  return {shards.tensor_count(), shards.shard_count(), shards.total_bytes()};
}

}  // namespace qshard
