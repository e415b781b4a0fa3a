// slurm/*.sbatch through a real Slurm cluster (scripts/slurm-local.sh, started by the CTest
// fixture): sbatch, srun --mpi=pmix, job arrays, dependencies, and requeue with --resume.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <regex>
#include <string>
#include <thread>

#include "qshard/io/checkpoint.hpp"
#include "qshard/sweep/results.hpp"
#include "shell.hpp"

namespace qshard {
namespace {
namespace fs = std::filesystem;
using test::Ran;
using test::Scratch;
using test::sh;
using test::write_file;

const fs::path kSource = QSHARD_SOURCE_DIR;
const fs::path kApps = QSHARD_APPS_DIR;
const fs::path kShared = QSHARD_SHARED_DIR;
const fs::path kState = QSHARD_SLURM_STATE;

class RealSlurm : public ::testing::Test {
 protected:
  void SetUp() override {
    if (fs::exists(kState / "unavailable"))
      GTEST_SKIP() << "no local Slurm cluster: " << test::read_file(kState / "unavailable");
    ASSERT_TRUE(fs::exists(kState / "slurm.conf"))
        << "the fixture cluster.slurm_start did not start the cluster (" << kState << ")";
  }

  // A Slurm client command against the local cluster, with the build's apps for the scripts.
  static Ran slurm(const std::string& command, int timeout_s = 60) {
    return sh("export SLURM_CONF=" + (kState / "slurm.conf").string() +
                  " QSHARD_BIN=" + kApps.string() + "; " + command,
              timeout_s);
  }

  // Submits with sbatch --parsable; returns the job id.
  static std::string submit(const std::string& arguments) {
    const Ran r = slurm("sbatch --parsable " + arguments);
    EXPECT_EQ(r.code, 0) << r.output;
    const std::string id = r.output.substr(0, r.output.find_first_of(";\n"));
    EXPECT_TRUE(std::regex_match(id, std::regex("[0-9]+"))) << r.output;
    return id;
  }

  // A field of `scontrol show job` (JobState, ExitCode, Restarts...), of the first record.
  static std::string job_field(const std::string& id, const std::string& field) {
    const Ran r = slurm("scontrol show job --oneliner " + id);
    std::smatch m;
    if (!std::regex_search(r.output, m, std::regex(field + "=([^ \n]*)"))) return "";
    return m[1];
  }

  // Waits until no task of the job is pending or running; returns its (first record's) state.
  static std::string wait_for(const std::string& id, int timeout_s) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    while (std::chrono::steady_clock::now() < until) {
      const Ran queued = slurm("squeue --noheader --jobs " + id + " --format=%T");
      if (queued.code == 0 && queued.output.find_first_not_of(" \n") == std::string::npos)
        return job_field(id, "JobState");
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    slurm("scancel " + id);
    ADD_FAILURE() << "job " << id << " still queued or running after " << timeout_s << " s";
    return "TIMEOUT";
  }

  // Options that fit the one local node: no GPUs, one CPU per task.
  static std::string fit(const Scratch& dir) {
    return "--nodes=1 --ntasks-per-node=2 --gpus-per-node=0 --cpus-per-task=1 --chdir=" +
           dir.path().string() + " ";
  }
};

std::string stories260k_config() {
  const std::string data = (kShared / "data/stories260k").string();
  return "model = " + (kShared / "models/stories260k").string() + "\ncalib = " + data +
         "/calib_128x256.i32\nsamples = 128\nseq_len = 256\nbackend = cpu\n";
}

// The same job through mpirun, for the checkpoints the Slurm runs must equal.
std::uint64_t mpirun_reference(const Scratch& dir, const std::string& config, int ranks = 2) {
  const Ran r =
      sh("cd " + dir.path().string() + " && " QSHARD_MPIEXEC " -np " + std::to_string(ranks) +
         " --oversubscribe " + (kApps / "qshard-quantize").string() + " --config " + config +
         " --out reference.h5 --quiet");
  EXPECT_EQ(r.code, 0) << r.output;
  return hash_quantized_tensors(dir.path() / "reference.h5");
}

// quantize.sbatch with 2 tasks: srun --mpi=pmix starts 2 ranks; the mpirun run's checkpoint.
TEST_F(RealSlurm, QuantizeSbatchOnTwoTasksGivesTheMpirunCheckpoint) {
  if (!fs::exists(kShared / "models/stories260k/model.safetensors"))
    GTEST_SKIP() << "stories260k not found under " << kShared << " (../shared beside the checkout)";
  Scratch dir("qshard-slurm-quantize");
  write_file(dir.path() / "job.ini", stories260k_config());
  const std::string id = submit(fit(dir) + "--output=%x-%j.out " +
                                (kSource / "slurm/quantize.sbatch").string() + " job.ini out.h5");
  ASSERT_EQ(wait_for(id, 600), "COMPLETED")
      << test::read_file(dir / ("qshard-quantize-" + id + ".out"));
  const std::string log = test::read_file(dir / ("qshard-quantize-" + id + ".out"));
  EXPECT_NE(log.find("qshard: srun --mpi=pmix"), std::string::npos) << log;
  EXPECT_NE(log.find(", 2 rank(s)"), std::string::npos) << log;
  EXPECT_EQ(job_field(id, "ExitCode"), "0:0");
  ASSERT_TRUE(fs::exists(dir.path() / "out.h5")) << log;
  EXPECT_FALSE(fs::exists(dir.path() / "out.h5.parts"));
  EXPECT_EQ(hash_quantized_tensors(dir.path() / "out.h5"), mpirun_reference(dir, "job.ini"));
}

// sweep.sbatch as a real job array of 4 points, then the report as a dependent job (afterany),
// as the script's header tells users to submit them.
TEST_F(RealSlurm, SweepJobArrayThenADependentReportJob) {
  if (!fs::exists(kShared / "models/stories260k/model.safetensors"))
    GTEST_SKIP() << "stories260k not found under " << kShared << " (../shared beside the checkout)";
  Scratch dir("qshard-slurm-sweep");
  const std::string data = (kShared / "data/stories260k").string();
  write_file(dir.path() / "base.ini", stories260k_config() + "quiet = true\n");
  write_file(dir.path() / "sweep.ini",
             "[sweep]\nbase = base.ini\nout_dir = out\neval_tokens = " + data +
                 "/eval_256x256.i32\neval_seq_len = 256\neval_rows = 32\n"
                 "[grid]\ngroup_size = 32\nbits = 4,8\nmethod = rtn,gptq\n");
  const Ran count =
      sh((kApps / "qshard-sweep").string() + " --sweep " + dir / "sweep.ini" + " --count");
  ASSERT_EQ(count.code, 0) << count.output;
  ASSERT_EQ(std::stoi(count.output), 4);
  const std::string array =
      submit(fit(dir) + "--array=0-3 " + (kSource / "slurm/sweep.sbatch").string() + " sweep.ini");
  const std::string report =
      submit("--ntasks=1 --gpus-per-node=0 --chdir=" + dir.path().string() +
             " --job-name=qshard-report --output=report-%j.out --dependency=afterany:" + array +
             " --wrap \"" + (kApps / "qshard-sweep").string() + " --report --sweep sweep.ini\"");
  const std::string state = wait_for(report, 900);
  std::string logs;
  for (const auto& entry : fs::directory_iterator(dir.path()))
    if (entry.path().extension() == ".out")
      logs += entry.path().filename().string() + ":\n" + test::read_file(entry.path());
  ASSERT_EQ(state, "COMPLETED") << logs;
  for (int task = 0; task < 4; ++task) {
    const std::string task_id = array + "_" + std::to_string(task);
    EXPECT_EQ(job_field(task_id, "JobState"), "COMPLETED") << task_id;
    const std::string log =
        test::read_file(dir / ("qshard-sweep-" + array + "_" + std::to_string(task) + ".out"));
    EXPECT_NE(log.find("array task " + std::to_string(task) + " of job " + array),
              std::string::npos)
        << log;
  }
  const auto lines = read_result_lines(dir.path() / "out/results.jsonl");
  ASSERT_EQ(lines.size(), 4u);
  std::map<std::int64_t, nlohmann::json> by_index;
  for (const auto& r : lines) {
    EXPECT_EQ(r.at("ranks"), 2);
    EXPECT_EQ(r.at("slurm_job_id"), array);
    by_index[r.at("index").get<std::int64_t>()] = r;
  }
  ASSERT_EQ(by_index.size(), 4u);
  // Grid order (group, bits, method) with the last key fastest: 1 is GPTQ 4-bit, 0 RTN 4-bit.
  EXPECT_LT(by_index[1].at("perplexity").get<double>(), by_index[0].at("perplexity").get<double>());
  const std::string markdown = test::read_file(dir.path() / "out/report.md");
  EXPECT_NE(markdown.find(by_index[1].at("checkpoint_hash").get<std::string>()), std::string::npos)
      << markdown;
  for (const char* file : {"report.csv", "report.png", "report.svg"})
    EXPECT_TRUE(fs::exists(dir.path() / "out" / file)) << file;
}

// SIGUSR1 to the batch shell (what --signal=B:USR1@300 sends before the time limit; scancel
// sends it now): the script requeues the job, Slurm starts it again, it resumes after the
// finished layers, and the checkpoint is the uninterrupted run's, bitwise.
TEST_F(RealSlurm, ARequeuedJobResumesToTheUninterruptedCheckpoint) {
  Scratch dir("qshard-slurm-requeue");
  // About 3 s a layer on 2 ranks: time to signal between the first layer and the last.
  write_file(dir.path() / "job.ini",
             "model = synthetic:tiny\nsamples = 256\nseq_len = 256\nbackend = cpu\n");
  const std::string id = submit(fit(dir) + "--output=%x-%j.out " +
                                (kSource / "slurm/quantize.sbatch").string() + " job.ini out.h5");
  const fs::path first_layer = dir.path() / "out.h5.parts/layer-00000.h5";
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  while (!fs::exists(first_layer) && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(fs::exists(first_layer)) << "the job never finished its first layer";
  const Ran signal = slurm("scancel --signal=USR1 --batch " + id);
  ASSERT_EQ(signal.code, 0) << signal.output;
  // Slurm holds a requeued job back for about two minutes before it may start again.
  ASSERT_EQ(wait_for(id, 900), "COMPLETED");
  const std::string log = test::read_file(dir / ("qshard-quantize-" + id + ".out"));
  EXPECT_EQ(job_field(id, "Restarts"), "1") << log;
  EXPECT_NE(log.find("requeueing job " + id), std::string::npos) << log;
  EXPECT_NE(log.find("resuming the interrupted job"), std::string::npos) << log;
  std::smatch resumed;
  ASSERT_TRUE(std::regex_search(log, resumed, std::regex("resuming after ([0-9]+) completed")))
      << log;
  EXPECT_GE(std::stoi(resumed[1]), 1);
  EXPECT_LT(std::stoi(resumed[1]), 4) << "the signal came after the last layer: nothing resumed";
  ASSERT_TRUE(fs::exists(dir.path() / "out.h5")) << log;
  EXPECT_EQ(hash_quantized_tensors(dir.path() / "out.h5"), mpirun_reference(dir, "job.ini"));
}

}  // namespace
}  // namespace qshard
