#pragma once
// qshard's HDF5 checkpoint (schema: docs/CHECKPOINT.md). Layers are written one file each while
// the job runs (the resume state) and assembled into the final file, which appears under its
// name only when complete. Format 2 stores a content hash per module and for the file
// (io/checkpoint_hash.hpp); readers check them, format 1 files are read with a warning.
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
inline constexpr std::int64_t kCheckpointFormatVersion = 2;

struct ModuleRecord {
  ModuleId module;
  std::string method = "gptq";          // "gptq", "rtn" or "none" (kept in floating point)
  std::int64_t calibration_tokens = 0;  // tokens in its Hessian (an expert's: those routed to it)
  QuantizedWeight weight;               // when quantized
  MatrixF float_weight;                 // when method == "none"
  std::vector<float> bias;              // empty when the module has none
  double objective_gptq = 0.0;          // tr((W - Q) H (W - Q)^T) of the stored weights
  double objective_rtn = 0.0;           // the same for round-to-nearest with the same settings
  double damp_percent_used = 0.0;
  std::int64_t damp_steps = 0;
  std::uint64_t content_hash = 0;  // read_layer: the module hash of the payload read
};

struct LayerRecord {
  std::int64_t index = 0;
  MatrixF input_norm;  // [1, hidden]
  MatrixF post_norm;
  MatrixF q_norm, k_norm;             // [1, head_dim] for Qwen3 (config qk_norm); empty otherwise
  MatrixF router;                     // [experts, hidden] of a sparse layer; empty otherwise
  MatrixF shared_expert_gate;         // [1, hidden] of Qwen2-MoE's sparse layers
  std::vector<ModuleRecord> modules;  // the linear modules in layer_modules() order
  double seconds = 0.0;

  const ModuleRecord& module(ModuleId id) const;
};

// "layers/00003": the group of layer 3.
std::string layer_group_name(std::int64_t index);

// Writes `layer` of a `config` model as the file `path` (under a temporary name, renamed when
// complete).
void write_layer_file(const std::filesystem::path& path, const ModelConfig& config,
                      const LayerRecord& layer, DType float_dtype);
// Reads the layer group "layers/NNNNN" of `file` (a `config` model); throws naming the module whose
// payload does not match its stored content hash, or holds a g_idx out of range or a non-finite
// scale.
LayerRecord read_layer(const h5::File& file, const ModelConfig& config, std::int64_t index);
// Refuses a file whose /layers group does not hold exactly the groups of layers [0, layers).
void require_layer_groups(const h5::Group& root, std::int64_t layers);

// Writes a floating-point tensor in `dtype` (F32 as float; F16/BF16 as uint16 with attr "dtype").
void write_float(const h5::Group& group, const std::string& name, const MatrixF& values,
                 DType dtype);
MatrixF read_float(const h5::Group& group, const std::string& name);

// The space the final checkpoint of `payload_bytes` (its layer files and model tensors) is given:
// the payload, 1/64 more and 256 KiB (HDF5's metadata).
std::uintmax_t checkpoint_space_needed(std::uintmax_t payload_bytes);

// The final checkpoint: created as PATH.tmp (a stale one is removed first), renamed to PATH by
// commit() once its file hash is set and it is on disk; removed if never committed. With
// `payload_bytes`, refuses to start unless checkpoint_space_needed(payload_bytes) are free.
class CheckpointWriter {
 public:
  explicit CheckpointWriter(std::filesystem::path path, std::uintmax_t payload_bytes = 0);
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  h5::Group root() const { return file_->root(); }  // sets @format and @format_version itself
  // Copies the layer group of a file written by write_layer_file (no decoding); HDF5's failure
  // (a full disk: "No space left on device") is thrown naming both files.
  void add_layer_file(const std::filesystem::path& layer_file, std::int64_t index);
  void write_model_tensor(const std::string& name, const MatrixF& values, DType dtype);
  // Sets the file hash (@layers must be set and every layer added), closes, syncs and renames.
  void commit();

 private:
  std::filesystem::path path_;
  std::filesystem::path temporary_;
  std::optional<h5::File> file_;
  bool committed_ = false;
};

// A checkpoint opened for reading: refused unless its format is known, @layers matches its layer
// groups and its config, and (format 2) its file hash matches its module hashes.
class Checkpoint {
 public:
  explicit Checkpoint(const std::filesystem::path& path);
  const std::filesystem::path& path() const { return path_; }
  std::int64_t format_version() const { return format_version_; }
  std::optional<std::uint64_t> content_hash() const { return content_hash_; }  // format 2
  const ModelConfig& model_config() const { return config_; }
  std::int64_t layer_count() const { return layers_; }
  LayerRecord layer(std::int64_t index) const;
  bool has_model_tensor(const std::string& name) const;
  MatrixF model_tensor(const std::string& name) const;  // "model.embed_tokens.weight", ...
  const h5::File& file() const { return file_; }

 private:
  std::filesystem::path path_;
  h5::File file_;
  ModelConfig config_;
  std::int64_t layers_ = 0;
  std::int64_t format_version_ = 0;
  std::optional<std::uint64_t> content_hash_;
};

}  // namespace qshard

namespace qshard {

// Prints a summary of a checkpoint: provenance, layers, bits, groups, sizes, objectives.
void print_checkpoint_summary(const Checkpoint& checkpoint, std::ostream& out);
// The checkpoint's file hash recomputed from its data (format 1 files too): each module's hash
// from its datasets (checked against the stored one where there is one), then file_hash.
std::uint64_t hash_quantized_tensors(const std::filesystem::path& checkpoint);

struct CheckpointVerification {
  std::int64_t format_version = 0;
  std::int64_t modules = 0;
  std::uint64_t hash = 0;  // the file hash, recomputed from the data
};
// Reads the whole checkpoint and checks everything: every dataset (Fletcher32), @layers against
// the groups, every module against its hash, g_idx range and finite scales, the file hash.
// Throws at the first failure, naming the dataset or module.
CheckpointVerification verify_checkpoint(const std::filesystem::path& path);

}  // namespace qshard
