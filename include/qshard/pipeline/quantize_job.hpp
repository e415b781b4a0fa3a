#pragma once
// qshard-quantize: the sequential layer loop over all ranks, resume state and the checkpoint.
#include <ostream>
#include <string>

#include "qshard/backend/backend.hpp"
#include "qshard/pipeline/job_options.hpp"

namespace qshard {

struct JobResult {
  bool completed = false;  // false when stopped early by stop_after_layers
  double seconds = 0.0;
  double objective_gptq = 0.0;  // summed over all quantized modules
  double objective_rtn = 0.0;
};

// Every rank calls this with the same options (without --layer_groups: one communicator). Rank 0
// prints progress to `log` and writes the checkpoint; layer files under OUT.parts/ hold the resume
// state until the checkpoint is complete.
JobResult run_quantize_job(const JobOptions& options, Communicator& comm, const Backend& backend,
                           const std::string& command_line, std::ostream& log);

// --layer_groups G: every rank (`world`, host messages: the boundary activations, the checkpoint)
// and this rank's group (`group`: its block's collectives; NCCL with the CUDA backend).
struct JobCommunicators {
  Communicator& world;
  Communicator& group;
};
JobResult run_quantize_job(const JobOptions& options, const JobCommunicators& comms,
                           const Backend& backend, const std::string& command_line,
                           std::ostream& log);

// Exit code of a job stopped by stop_after_layers (as if it had been killed).
inline constexpr int kStoppedExitCode = 3;

}  // namespace qshard
