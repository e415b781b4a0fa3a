// The Slurm scripts without Slurm: bash -n and shellcheck; quantize.sbatch under mpirun with its
// automatic --resume; slurm/sweep.sbatch as a simulated job array (SLURM_* set here, srun a stub
// that runs mpirun with 2 ranks) end to end on stories260k, then the report and reproducibility.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "qshard/io/checkpoint.hpp"
#include "qshard/sweep/results.hpp"
#include "shell.hpp"

namespace qshard {
namespace {
namespace fs = std::filesystem;

const fs::path kSource = QSHARD_SOURCE_DIR;
const fs::path kApps = QSHARD_APPS_DIR;
const fs::path kShared = QSHARD_SHARED_DIR;

using test::Ran;
using test::Scratch;
using test::sh;
using test::write_file;

// No Slurm variables from an enclosing job leak into the simulated one.
const std::string kClean =
    "env -u SLURM_JOB_ID -u SLURM_ARRAY_JOB_ID -u SLURM_ARRAY_TASK_ID -u SLURM_SUBMIT_DIR "
    "-u SLURM_LOCALID -u QSHARD_LAUNCHER ";

std::vector<fs::path> sbatch_scripts() {
  std::vector<fs::path> scripts;
  for (const auto& entry : fs::directory_iterator(kSource / "slurm"))
    if (entry.path().extension() == ".sbatch") scripts.push_back(entry.path());
  return scripts;
}

TEST(SlurmScripts, PassBashSyntaxCheck) {
  const auto scripts = sbatch_scripts();
  ASSERT_GE(scripts.size(), 2u);
  for (const fs::path& script : scripts) {
    const Ran r = sh("bash -n " + script.string());
    EXPECT_EQ(r.code, 0) << script << "\n" << r.output;
  }
}

TEST(SlurmScripts, PassShellcheck) {
  if (sh("command -v shellcheck").code != 0) {
    GTEST_SKIP() << "shellcheck is not installed (scripts/test.sh installs it): not checked";
  }
  std::vector<fs::path> scripts = sbatch_scripts();
  // The local cluster the real-Slurm and multi-host tests run on (tests/cluster).
  for (const char* script :
       {"scripts/slurm-local.sh", "scripts/netns-hosts.sh", "tests/cluster/fixture.sh"})
    scripts.push_back(kSource / script);
  for (const fs::path& script : scripts) {
    const Ran r = sh("shellcheck " + script.string());
    EXPECT_EQ(r.code, 0) << script << "\n" << r.output;
  }
}

TEST(SlurmScripts, UsageErrors) {
  const Ran quantize =
      sh(kClean + "bash " + (kSource / "slurm/quantize.sbatch").string() + " only-one");
  EXPECT_EQ(quantize.code, 2);
  EXPECT_NE(quantize.output.find("usage"), std::string::npos) << quantize.output;
  const Ran sweep = sh(kClean + "bash " + (kSource / "slurm/sweep.sbatch").string() + " s.ini");
  EXPECT_NE(sweep.code, 0);
  EXPECT_NE(sweep.output.find("not an array task"), std::string::npos) << sweep.output;
}

// Outside Slurm quantize.sbatch runs mpirun; a job stopped after 2 layers continues with
// --resume added by the script (as a requeued job does) and gives the uninterrupted checkpoint.
TEST(SlurmScripts, QuantizeWithoutSlurmResumesAnInterruptedJob) {
  Scratch dir("qshard-quantize-sbatch");
  write_file(dir.path() / "tiny.ini",
             "model = synthetic:tiny\nsamples = 8\nseq_len = 32\nbits = 4\ngroup_size = "
             "32\nbackend = cpu\n");
  const std::string script = kClean + "QSHARD_BIN=" + kApps.string() +
                             " QSHARD_LAUNCHER=\"mpirun -np 2 --oversubscribe\" bash " +
                             (kSource / "slurm/quantize.sbatch").string() + " " + dir / "tiny.ini" +
                             " ";
  const Ran full = sh(script + dir / "full.h5" + " --quiet");
  ASSERT_EQ(full.code, 0) << full.output;
  const Ran cut = sh(script + dir / "cut.h5" + " --quiet --stop_after_layers 2");
  ASSERT_EQ(cut.code, 3) << cut.output;
  ASSERT_TRUE(fs::is_directory(dir / "cut.h5.parts"));
  const Ran resumed = sh(script + dir / "cut.h5");
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming the interrupted job"), std::string::npos)
      << resumed.output;
  EXPECT_NE(resumed.output.find("resuming after 2 completed layer(s)"), std::string::npos)
      << resumed.output;
  EXPECT_EQ(hash_quantized_tensors(dir / "full.h5"), hash_quantized_tensors(dir / "cut.h5"));
}

// slurm/sweep.sbatch as array tasks 0..3 of a 2×2 grid on stories260k.
TEST(SlurmScripts, SweepArrayEndToEndOnStories260k) {
  if (!fs::exists(kShared / "models/stories260k/model.safetensors")) {
    GTEST_SKIP() << "stories260k not found under " << kShared << " (../shared beside the checkout)";
  }
  Scratch dir("qshard-sweep-sbatch");
  // srun stand-in: drops srun's own options, runs the program under mpirun with 2 ranks.
  fs::create_directories(dir.path() / "bin");
  write_file(dir.path() / "bin/srun",
             "#!/usr/bin/env bash\nwhile [[ $# -gt 0 && $1 == --* ]]; do shift; done\n"
             "exec mpirun -np 2 --oversubscribe \"$@\"\n");
  fs::permissions(dir.path() / "bin/srun", fs::perms::owner_all, fs::perm_options::add);
  const std::string data = (kShared / "data/stories260k").string();
  write_file(dir.path() / "base.ini", "model = " + (kShared / "models/stories260k").string() +
                                          "\ncalib = " + data +
                                          "/calib_128x256.i32\nsamples = 128\n"
                                          "seq_len = 256\nbackend = cpu\nquiet = true\n");
  write_file(dir.path() / "sweep.ini",
             "[sweep]\nbase = base.ini\nout_dir = out\neval_tokens = " + data +
                 "/eval_256x256.i32\neval_seq_len = 256\neval_rows = 32\n"
                 "[grid]\ngroup_size = 32\nbits = 4,8\nmethod = rtn,gptq\n");
  const auto task = [&](int index, const std::string& args = "") {
    // Slurm starts the script in the job's working folder (here the submission folder).
    return sh("cd " + dir.path().string() + " && " + kClean +
              "SLURM_JOB_ID=" + std::to_string(1000 + index) +
              " SLURM_ARRAY_JOB_ID=999 SLURM_ARRAY_TASK_ID=" + std::to_string(index) +
              " SLURM_SUBMIT_DIR=" + dir.path().string() + " QSHARD_BIN=" + kApps.string() +
              " PATH=" + dir / "bin" + ":$PATH bash " + (kSource / "slurm/sweep.sbatch").string() +
              " sweep.ini" + args);
  };
  for (int index = 0; index < 4; ++index) {
    const Ran r = task(index);
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_NE(r.output.find("array task " + std::to_string(index) + " of job 999"),
              std::string::npos)
        << r.output;
  }
  const auto lines = read_result_lines(dir.path() / "out/results.jsonl");
  ASSERT_EQ(lines.size(), 4u);
  std::map<std::string, nlohmann::json> by_point;
  for (const auto& r : lines) {
    EXPECT_EQ(r.at("ranks"), 2);
    EXPECT_EQ(r.at("slurm_job_id"), "999");
    EXPECT_EQ(r.at("checkpoint_hash").get<std::string>().size(), 16u);
    EXPECT_EQ(r.at("calibration_hash"), lines[0].at("calibration_hash"));
    EXPECT_EQ(r.at("eval_predictions"), 32 * 255);
    EXPECT_NEAR(r.at("fp32_perplexity").get<double>(), lines[0].at("fp32_perplexity").get<double>(),
                1e-9);
    EXPECT_GT(r.at("model_bytes").get<std::int64_t>(), 0);
    // Relative to the submission folder, as out_dir is.
    EXPECT_TRUE(fs::exists(dir.path() / r.at("checkpoint").get<std::string>()))
        << r.at("checkpoint");
    by_point[r.at("method").get<std::string>() + std::to_string(r.at("bits").get<int>())] = r;
  }
  ASSERT_EQ(by_point.size(), 4u);
  EXPECT_EQ(by_point["rtn4"].at("index"), 0);
  EXPECT_EQ(by_point["gptq8"].at("index"), 3);
  EXPECT_LT(by_point["gptq4"].at("perplexity").get<double>(),
            by_point["rtn4"].at("perplexity").get<double>());
  EXPECT_LT(by_point["gptq4"].at("kl").get<double>(), by_point["rtn4"].at("kl").get<double>());
  // 4 bits, group 32: codes 4 + fp16 scale and 4-bit zero per 32 weights + int32 g_idx per column.
  EXPECT_GT(by_point["gptq4"].at("bits_per_weight").get<double>(), 4.6);
  EXPECT_LT(by_point["gptq4"].at("bits_per_weight").get<double>(), 8.0);
  EXPECT_GT(by_point["gptq8"].at("bits_per_weight").get<double>(), 8.0);

  const Ran report = sh("cd " + dir.path().string() + " && " + (kApps / "qshard-sweep").string() +
                        " --report --results out/results.jsonl --out-dir report");
  ASSERT_EQ(report.code, 0) << report.output;
  for (const char* file : {"report.md", "report.csv", "report.gp", "report.png", "report.svg"}) {
    EXPECT_TRUE(fs::exists(dir.path() / "report" / file)) << file;
    EXPECT_GT(fs::file_size(dir.path() / "report" / file), 100u) << file;
  }
  std::ifstream md(dir.path() / "report/report.md");
  const std::string markdown{std::istreambuf_iterator<char>(md), std::istreambuf_iterator<char>()};
  EXPECT_NE(markdown.find(by_point["gptq4"].at("checkpoint_hash").get<std::string>()),
            std::string::npos);

  // Reproducibility: the same point again (another output folder) gives the same checkpoint.
  const Ran again = task(1, " --out-dir again");
  ASSERT_EQ(again.code, 0) << again.output;
  const auto repeated = read_result_lines(dir.path() / "again/results.jsonl");
  ASSERT_EQ(repeated.size(), 1u);
  EXPECT_EQ(repeated[0].at("checkpoint_hash"), by_point["gptq4"].at("checkpoint_hash"));
  EXPECT_EQ(repeated[0].at("perplexity"), by_point["gptq4"].at("perplexity"));
  EXPECT_EQ(hash_quantized_tensors(dir.path() / "again/point-0001.h5"),
            hash_quantized_tensors(dir.path() / "out/point-0001.h5"));
}

}  // namespace
}  // namespace qshard
