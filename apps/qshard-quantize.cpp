// qshard-quantize: GPTQ of a whole model over MPI ranks (mpirun / srun), one rank per GPU or core.
#include <cblas.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "qshard/backend/backend.hpp"
#include "qshard/core/error.hpp"
#include "qshard/core/signal_messages.hpp"
#include "qshard/dist/mpi.hpp"
#include "qshard/io/hdf5.hpp"
#include "qshard/pipeline/quantize_job.hpp"

namespace {
// One write per message, so the lines of several ranks never interleave.
void report(int rank, const char* what) {
  const std::string line =
      "qshard-quantize: error (rank " + std::to_string(rank) + "): " + what + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}
}  // namespace

int main(int argc, char** argv) {
  qshard::MpiSession mpi(&argc, &argv);
  qshard::MpiCommunicator comm;
  qshard::h5::silence_library_errors();  // HDF5 failures become exceptions with context
  std::string command_line;
  for (int i = 0; i < argc; ++i) command_line += (i ? " " : "") + std::string(argv[i]);
  try {
    const qshard::ParsedOptions parsed = [&] {
      try {  // the same argv on every rank: a bad option fails every rank alike
        return qshard::parse_job_options(argc, argv);
      } catch (const qshard::Error& e) {
        throw qshard::CollectiveError(e.what());
      }
    }();
    if (!parsed.options) {
      if (comm.is_root()) std::cout << parsed.help;
      return 0;
    }
    const qshard::JobOptions& options = *parsed.options;
    // SIGTERM (mpirun stopped, a batch job cancelled) and SIGBUS (a model file truncated while
    // mapped) end the job with a line saying so, instead of silently.
    const std::string parts =
        options.parts_dir.empty() ? options.out + ".parts" : options.parts_dir;
    qshard::install_signal_messages(
        qshard::str("qshard-quantize (rank ", comm.rank(), "): "),
        qshard::str("; the layers finished so far stay in ", parts,
                    ": run the same command with --resume to continue"));
    openblas_set_num_threads(options.threads);
    const int local_rank =
        qshard::launcher_local_rank() >= 0 ? qshard::launcher_local_rank() : comm.local_rank();
    const bool mpi_only = options.collectives == "mpi";
    const auto backend = qshard::make_backend(options.backend, local_rank, mpi_only);
    if (options.collectives == "nccl" && backend->name() != "cuda")
      throw qshard::CollectiveError("--collectives nccl needs the cuda backend");
    // NCCL moves the CUDA backend's device buffers (Hessian limbs); MPI everything else.
    const auto device_comm =
        mpi_only ? nullptr : qshard::make_device_communicator(comm, *backend, local_rank);
    qshard::Communicator& job_comm = device_comm ? *device_comm : comm;
    const qshard::JobResult result =
        qshard::run_quantize_job(options, job_comm, *backend, command_line, std::cout);
    return result.completed ? 0 : qshard::kStoppedExitCode;
  } catch (const qshard::CollectiveError& e) {
    // Raised on every rank together (checked options, missing inputs, agreed failures).
    report(comm.rank(), e.what());
    return 1;
  } catch (const std::exception& e) {
    // An error of this rank alone would leave the others waiting in a collective: abort the job.
    report(comm.rank(), e.what());
    if (comm.size() > 1) comm.abort(1);
    return 1;
  } catch (...) {
    report(comm.rank(), "unknown exception");
    if (comm.size() > 1) comm.abort(1);
    return 1;
  }
}
