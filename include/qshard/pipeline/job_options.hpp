#pragma once
// The options of qshard-quantize: every key works as `--key value` and as `key = value` in an INI
// file given by --config (the command line wins). `--help` documents every key.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "qshard/io/model_config.hpp"
#include "qshard/quant/quant_config.hpp"

namespace qshard {

struct JobOptions {
  std::string model = "synthetic:tiny";  // HF directory or synthetic:NAME
  std::uint64_t model_seed = 0;          // weights of synthetic models
  bool allow_extra_tensors = false;      // ignore tensors the model's config does not account for
  std::string calib;                     // token file spec; empty: random ids of the vocabulary
  std::string calib_sampling = "rows";   // rows: the file's first rows; random: seeded windows
  std::int64_t samples = 128;
  std::int64_t seq_len = 2048;
  std::uint64_t seed = 0;  // calibration sampling
  // Samples per forward unit (fixed: never depends on ranks). 4 x 2048 tokens keep the GPU Hessian
  // GEMM longer than its exact fixed-point pass (docs/PERFORMANCE.md).
  std::int64_t batch_samples = 4;
  std::string method = "gptq";  // gptq or rtn
  GptqOptions gptq;
  bool true_sequential = true;
  std::vector<Linear> modules{std::begin(kAllLinears),
                              std::end(kAllLinears)};  // the modules to quantize
  // Mixture-of-experts models: which calibration tokens make an expert's Hessians (routed: those
  // routed to it; all: every token, for the Hessians only), and below how many tokens an expert is
  // reported (an expert no token reached is quantized round-to-nearest).
  std::string moe_calibration = "routed";
  std::int64_t expert_min_tokens = 128;
  // Routed experts whose Hessians one forward pass of the calibration units accumulates (0: all
  // of a layer's): bounds each rank's partial Hessians, one more forward per batch.
  std::int64_t expert_batch = 0;
  // Layer-parallel mode: the ranks in this many contiguous groups, each quantizing one contiguous
  // block of layers from floating-point inputs at its first layer (1: the sequential job).
  int layer_groups = 1;
  std::string out = "qshard.h5";
  bool resume = false;
  bool force = false;                   // replace an existing `out` (never an input of the job)
  std::string parts_dir;                // unfinished layers; empty: OUT.parts
  std::string backend = "auto";         // cpu, cuda, auto
  std::string collectives = "auto";     // auto (NCCL for cuda, else MPI), nccl, mpi
  std::int64_t tile_rows = 128;         // rows per solve work unit (fixed: never depends on ranks)
  int threads = 1;                      // BLAS threads per rank
  std::int64_t stop_after_layers = -1;  // testing: stop as if killed after N layers
  bool quiet = false;
  std::string progress = "lines";  // lines, bar (only on a terminal) or none (as quiet)
  // Seconds a rank may wait in one host collective before it ends the job, naming the layer and
  // stage (another rank stopped or hangs); 0: wait forever.
  double collective_timeout = 1800.0;

  void validate() const;        // throws qshard::Error naming the key and the value
  std::string to_json() const;  // the full resolved configuration
  // The settings that must match for --resume to continue a job (everything that changes results).
  std::string result_key() const;
};

struct ParsedOptions {
  std::optional<JobOptions> options;  // empty when --help was asked for
  std::string help;
};

// Parses the command line (and --config FILE); unknown keys and bad values throw qshard::Error.
ParsedOptions parse_job_options(int argc, const char* const* argv);
ParsedOptions parse_job_options(const std::vector<std::string>& args);  // args without argv[0]

}  // namespace qshard
