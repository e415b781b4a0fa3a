#pragma once
// The checkpoint's header: who wrote it, with which settings, from which inputs. The one owner of
// the root attributes of docs/CHECKPOINT.md ("/" rows, except the format and the file hash, which
// the writer sets itself): the quantization job writes it, and export, the sweep and
// qshard-inspect read it.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace qshard {

namespace h5 {
class Group;
}
class Checkpoint;

// The settings of @job_config that readers act on, typed. A missing or mistyped field is an
// error naming the file and the field: never a silent default.
struct RecordedSettings {
  std::string method;  // "gptq" or "rtn"
  int bits = 0;
  std::int64_t group_size = -1;  // -1: one group per row
  bool sym = false;
  bool act_order = false;
  bool static_groups = false;
  bool true_sequential = true;
  double damp_percent = 0.0;
  std::string model;  // the model the job read: a directory or synthetic:NAME
  std::uint64_t model_seed = 0;
};

struct JobRecord {
  std::string qshard_version;
  std::string git_commit;
  std::string command_line;  // rank 0's
  std::string job_config;    // the fully resolved job settings, JSON (JobOptions::to_json)
  std::string model_config;  // the model's config, JSON
  std::string model_source;
  std::int64_t ranks = 0;
  std::string backend;  // "cpu" or "cuda"
  std::int64_t calibration_seed = 0;
  std::string calibration_hash;  // FNV-1a 64 of the calibration token ids, hex
  std::int64_t calibration_samples = 0;
  std::int64_t calibration_seq_len = 0;
  std::string created_utc;
  double seconds = 0.0;
  std::int64_t layers = 0;
  std::vector<double> objective_gptq;  // per layer
  std::vector<double> objective_rtn;
  // --layer_groups G > 1: the first layer of each group's block (G values); empty for the
  // sequential job, which writes no attribute.
  std::vector<std::int64_t> layer_block_starts;

  // Sets every attribute above on `root`.
  void write(const h5::Group& root) const;
  // Reads the attributes of a checkpoint's root; each one a file lacks (written by an older
  // qshard) stays empty or zero.
  static JobRecord read(const h5::Group& root);
  static JobRecord read(const Checkpoint& checkpoint);
  // @job_config's settings, checked; errors name `file` and the field.
  RecordedSettings settings(const std::filesystem::path& file) const;
};

}  // namespace qshard
