#pragma once
// qshard's HDF5 checkpoint (schema: docs/CHECKPOINT.md). Layers are written one file each while
// the job runs (the resume state) and assembled into the final file, which appears under its
// name only when complete.
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "qshard/core/dtype.hpp"
#include "qshard/core/matrix.hpp"
#include "qshard/io/hdf5.hpp"
#include "qshard/io/model_config.hpp"
#include "qshard/quant/quantized_weight.hpp"

namespace qshard {

inline constexpr const char* kCheckpointFormat = "qshard-gptq";
inline constexpr std::int64_t kCheckpointFormatVersion = 1;

struct ModuleRecord {
  Linear linear = Linear::Q;
  std::string method = "gptq";  // "gptq", "rtn" or "none" (kept in floating point)
  QuantizedWeight weight;       // when quantized
  MatrixF float_weight;         // when method == "none"
  std::vector<float> bias;      // empty when the module has none
  double objective_gptq = 0.0;  // tr((W - Q) H (W - Q)^T) of the stored weights
  double objective_rtn = 0.0;   // the same for round-to-nearest with the same settings
  double damp_percent_used = 0.0;
  std::int64_t damp_steps = 0;
};

struct LayerRecord {
  std::int64_t index = 0;
  MatrixF input_norm;  // [1, hidden]
  MatrixF post_norm;
  std::vector<ModuleRecord> modules;  // the seven linear modules
  double seconds = 0.0;

  const ModuleRecord& module(Linear linear) const;
};

// "layers/00003": the group of layer 3.
std::string layer_group_name(std::int64_t index);

// Writes `layer` as the file `path` (under a temporary name, renamed when complete).
void write_layer_file(const std::filesystem::path& path, const LayerRecord& layer,
                      DType float_dtype);
// Reads the layer group at `group_path` ("layers/00003") of `file`.
LayerRecord read_layer(const h5::File& file, std::int64_t index);

// Writes a floating-point tensor in `dtype` (F32 as float; F16/BF16 as uint16 with attr "dtype").
void write_float(const h5::Group& group, const std::string& name, const MatrixF& values,
                 DType dtype);
MatrixF read_float(const h5::Group& group, const std::string& name);

// The final checkpoint: created as PATH.tmp, renamed to PATH by commit(); removed if never
// committed.
class CheckpointWriter {
 public:
  explicit CheckpointWriter(std::filesystem::path path);
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  h5::Group root() const { return file_->root(); }
  // Copies the layer group of a file written by write_layer_file (no decoding).
  void add_layer_file(const std::filesystem::path& layer_file, std::int64_t index);
  void write_model_tensor(const std::string& name, const MatrixF& values, DType dtype);
  void commit();

 private:
  std::filesystem::path path_;
  std::filesystem::path temporary_;
  std::optional<h5::File> file_;
  bool committed_ = false;
};

// A checkpoint opened for reading.
class Checkpoint {
 public:
  explicit Checkpoint(const std::filesystem::path& path);
  const std::filesystem::path& path() const { return path_; }
  const ModelConfig& model_config() const { return config_; }
  std::int64_t layer_count() const { return layers_; }
  LayerRecord layer(std::int64_t index) const;
  bool has_model_tensor(const std::string& name) const;
  MatrixF model_tensor(const std::string& name) const;  // "model.embed_tokens.weight", ...
  std::string attr(const std::string& name) const;      // a string attribute of the root
  const h5::File& file() const { return file_; }

 private:
  std::filesystem::path path_;
  h5::File file_;
  ModelConfig config_;
  std::int64_t layers_ = 0;
};

}  // namespace qshard

namespace qshard {

// Prints a summary of a checkpoint: provenance, layers, bits, groups, sizes, objectives.
void print_checkpoint_summary(const Checkpoint& checkpoint, std::ostream& out);
// FNV-1a 64 of the datasets under /layers (name order; path, shape, stored bytes).
std::uint64_t hash_quantized_tensors(const std::filesystem::path& checkpoint);

}  // namespace qshard
