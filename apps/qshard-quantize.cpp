// qshard-quantize: GPTQ of a whole model over MPI ranks (mpirun / srun), one rank per GPU or core.
#include <cblas.h>

#include <iostream>
#include <memory>
#include <string>

#include "qshard/backend/backend.hpp"
#include "qshard/comm/mpi.hpp"
#include "qshard/core/error.hpp"
#include "qshard/core/signal_messages.hpp"
#include "qshard/io/hdf5_app.hpp"
#include "qshard/pipeline/backend_factory.hpp"
#include "qshard/pipeline/layer_groups.hpp"
#include "qshard/pipeline/quantize_job.hpp"

namespace {

// A CollectiveError is raised on every rank together (checked options, missing inputs, agreed
// failures): rank 0 prints it once for all. An error of one rank alone would leave the others
// waiting in a collective: it is printed with its rank and the job is aborted.
qshard::FailureReport on_failure(qshard::MpiCommunicator& comm, const std::exception* e) {
  if (dynamic_cast<const qshard::CollectiveError*>(e) != nullptr) return {"", comm.is_root(), {}};
  qshard::FailureReport report{qshard::str(" (rank ", comm.rank(), ")"), true, {}};
  if (comm.size() > 1) report.then = [&comm] { comm.abort(1); };
  return report;
}

}  // namespace

int main(int argc, char** argv) {
  qshard::MpiSession mpi(&argc, &argv);
  qshard::MpiCommunicator comm;
  qshard::App app = qshard::hdf5_app("qshard-quantize");
  app.on_failure = [&comm](const std::exception* e) { return on_failure(comm, e); };
  return qshard::run_app(
      app,
      [&] {
        std::string command_line;
        for (int i = 0; i < argc; ++i) command_line += (i ? " " : "") + std::string(argv[i]);
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
        // --layer_groups: each group's own ranks (contiguous), for its layers' collectives.
        std::unique_ptr<qshard::MpiCommunicator> group;
        if (options.layer_groups > 1) {
          const int color = [&] {
            try {  // the same rank count on every rank: every rank fails alike
              return qshard::group_of_rank(comm.rank(), comm.size(), options.layer_groups);
            } catch (const qshard::Error& e) {
              throw qshard::CollectiveError(e.what());
            }
          }();
          group = comm.split(color);
        }
        qshard::MpiCommunicator& group_host = group ? *group : comm;
        // NCCL moves the CUDA backend's device buffers (Hessian limbs); MPI everything else.
        const auto device_comm =
            mpi_only ? nullptr : qshard::make_device_communicator(group_host, *backend, local_rank);
        qshard::Communicator& group_comm =
            device_comm ? *device_comm : static_cast<qshard::Communicator&>(group_host);
        // Between groups' GPUs the boundary activations go by NCCL send/receive too.
        const auto world_device = options.layer_groups > 1 && !mpi_only
                                      ? qshard::make_device_communicator(comm, *backend, local_rank)
                                      : nullptr;
        qshard::Communicator& world_comm =
            world_device ? *world_device : static_cast<qshard::Communicator&>(comm);
        const qshard::JobResult result =
            options.layer_groups > 1
                ? qshard::run_quantize_job(options, {world_comm, group_comm}, *backend,
                                           command_line, std::cout)
                : qshard::run_quantize_job(options, group_comm, *backend, command_line, std::cout);
        return result.completed ? 0 : qshard::kStoppedExitCode;
      },
      std::cerr);
}
