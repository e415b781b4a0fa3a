#pragma once
// qshard-sweep --index N: quantize one grid point with qshard-quantize (a child process under the
// launcher), evaluate its checkpoint in-process against the original model, append the results.
#include <cstdint>
#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qshard/model/causal_lm.hpp"
#include "qshard/sweep/sweep_spec.hpp"

namespace qshard {

struct PointRunOptions {
  std::vector<std::string> launcher;    // e.g. {"srun", "--mpi=pmix"}; empty: run directly
  std::filesystem::path quantize_bin;   // the qshard-quantize executable
  std::filesystem::path out_dir;        // overrides the sweep's out_dir when not empty
  std::vector<std::string> extra_args;  // appended to qshard-quantize's arguments
  LayerRunner eval_runner;              // where the evaluation's decoder layers run (empty: CPU)
};

std::filesystem::path point_checkpoint(const std::filesystem::path& out_dir, std::int64_t index);

// The full command: launcher, qshard-quantize, --config BASE, one --KEY VALUE per grid key,
// --out CHECKPOINT, --resume when CHECKPOINT.parts/ exists (a requeued task), then extra_args.
std::vector<std::string> quantize_command(const SweepSpec& spec, const SweepPoint& point,
                                          const PointRunOptions& options);

// Parses the point's qshard-quantize options (base config + grid values) as qshard-quantize
// would, so an unknown key or a bad value fails before any job starts; throws naming the sweep
// file and the point.
void check_point_options(const SweepSpec& spec, const SweepPoint& point);

// Evaluates the checkpoint of `point` (already written) and returns its results record.
// `runner` (when set) runs both models' decoder layers, e.g. on a GPU; the figures agree with the
// CPU's within float32 rounding.
nlohmann::json evaluate_point(const SweepSpec& spec, const SweepPoint& point,
                              const std::filesystem::path& checkpoint, double quantize_seconds,
                              const LayerRunner& runner = {});

// Runs and evaluates the point, appends its line to OUT_DIR/results.jsonl, returns the record.
nlohmann::json run_point(const SweepSpec& spec, std::int64_t index, const PointRunOptions& options,
                         std::ostream& log);

}  // namespace qshard
