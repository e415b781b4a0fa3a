// qshard-sweep's command line: --list, --count, --index N selection and the qshard-quantize
// command.
#include <gtest/gtest.h>

#include <sstream>

#include "qshard/core/error.hpp"
#include "qshard/sweep/process.hpp"
#include "qshard/sweep/sweep_cli.hpp"
#include "qshard/sweep/sweep_run.hpp"
#include "sweep_test_support.hpp"

namespace qshard {
namespace {
namespace fs = std::filesystem;

struct CliRun {
  int code;
  std::string out, err;
};

CliRun cli(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  const int code = run_sweep_cli(args, "/opt/qshard/bin/qshard-sweep", out, err);
  return {code, out.str(), err.str()};
}

class SweepCli : public ::testing::Test {
 protected:
  void SetUp() override {
    test::write_text(dir_ / "base.ini", "model = synthetic:tiny\n");
    test::write_text(
        dir_ / "sweep.ini",
        "[sweep]\nbase = base.ini\nout_dir = " + (dir_ / "out").string() +
            "\neval_tokens = e.i32\neval_seq_len = 16\n[grid]\n"
            "group_size = 32,-1\nmethod = rtn,gptq\nbits = 2,3,4,8\nact_order = 0,1\n");
  }
  std::string sweep() const { return (dir_ / "sweep.ini").string(); }
  test::ScratchDir dir_{"qshard-sweep-cli"};
};

TEST_F(SweepCli, ListPrintsEveryPointInIndexOrder) {
  const CliRun r = cli({"--sweep", sweep(), "--list"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("32 points"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("0000  group_size=32 method=rtn bits=2 act_order=0\n"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("0001  group_size=32 method=rtn bits=2 act_order=1\n"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("0031  group_size=-1 method=gptq bits=8 act_order=1\n"), std::string::npos)
      << r.out;
  EXPECT_LT(r.out.find("0009 "), r.out.find("0010 "));
  const CliRun count = cli({"--sweep", sweep(), "--count"});
  EXPECT_EQ(count.out, "32\n");
}

TEST_F(SweepCli, ModesAndErrors) {
  EXPECT_NE(cli({"--sweep", sweep()}).err.find("exactly one of"), std::string::npos);
  EXPECT_NE(cli({"--sweep", sweep(), "--list", "--count"}).err.find("exactly one of"),
            std::string::npos);
  const CliRun out_of_range = cli({"--sweep", sweep(), "--index", "32"});
  EXPECT_EQ(out_of_range.code, 1);
  EXPECT_NE(out_of_range.err.find("point 32 is outside the grid of 32 points"), std::string::npos)
      << out_of_range.err;
  EXPECT_NE(cli({"--list"}).err.find("--sweep"), std::string::npos);
  EXPECT_NE(cli({"--sweep", sweep(), "--list", "--colour"}).err.find("colour"), std::string::npos);
  EXPECT_EQ(cli({"--help"}).code, 0);
  EXPECT_NE(cli({"--report", "--results", (dir_ / "none.jsonl").string()}).err.find("none.jsonl"),
            std::string::npos);
}

TEST_F(SweepCli, IndexSelectsThePointsSettingsForQshardQuantize) {
  const SweepSpec spec = parse_sweep(sweep());
  const SweepPoint point = sweep_point(spec, 21);  // 21 = 1·16 + 0·8 + 2·2 + 1
  EXPECT_EQ(point.describe(), "group_size=-1 method=rtn bits=4 act_order=1");
  PointRunOptions options;
  options.launcher = split_command("  mpirun -np 2\t--oversubscribe ");
  options.quantize_bin = "/bin/qshard-quantize";
  options.extra_args = {"--threads", "2"};
  const fs::path checkpoint = dir_ / "out" / "point-0021.h5";
  EXPECT_EQ(point_checkpoint(dir_ / "out", 21), checkpoint);
  const std::vector<std::string> expected = {"mpirun",
                                             "-np",
                                             "2",
                                             "--oversubscribe",
                                             "/bin/qshard-quantize",
                                             "--config=" + (dir_ / "base.ini").string(),
                                             "--group_size=-1",
                                             "--method=rtn",
                                             "--bits=4",
                                             "--act_order=1",
                                             "--out=" + checkpoint.string(),
                                             "--force",
                                             "--threads",
                                             "2"};
  EXPECT_EQ(quantize_command(spec, point, options), expected);
  // A requeued task whose quantization was interrupted continues it.
  fs::create_directories(checkpoint.string() + ".parts");
  const std::vector<std::string> resumed = quantize_command(spec, point, options);
  EXPECT_EQ(resumed[12], "--resume");
  // --out-dir moves the checkpoint.
  options.out_dir = dir_ / "elsewhere";
  EXPECT_EQ(quantize_command(spec, point, options)[10],
            "--out=" + (dir_ / "elsewhere/point-0021.h5").string());
}

TEST(SweepProcess, RunsWithoutAShellAndReportsExitStatus) {
  EXPECT_EQ(run_process({"true"}), 0);
  EXPECT_EQ(run_process({"sh", "-c", "exit 7"}), 7);
  EXPECT_THROW(run_process({"/nonexistent/qshard-quantize"}), Error);
  EXPECT_EQ(shell_quote({"a", "b c", "it's"}), "a 'b c' 'it'\\''s'");
}

}  // namespace
}  // namespace qshard

namespace qshard {
namespace {

TEST(SweepCheck, ListRejectsKeysAndValuesQshardQuantizeWouldReject) {
  test::ScratchDir dir("qshard-sweep-check");
  test::write_text(dir / "base.ini", "model = synthetic:tiny\nbits = 4\n");
  const auto list = [&](const std::string& grid) {
    test::write_text(
        dir / "s.ini",
        "[sweep]\nbase = base.ini\neval_tokens = e.i32\neval_seq_len = 8\n[grid]\n" + grid);
    std::ostringstream out, err;
    const int code =
        run_sweep_cli({"--sweep", (dir / "s.ini").string(), "--list"}, "/x/qshard-sweep", out, err);
    return std::make_pair(code, err.str());
  };
  EXPECT_EQ(list("bits = 2,8\nact_order = 0,1\n").first, 0);
  const auto bad_value = list("bits = 4,5\n");
  EXPECT_EQ(bad_value.first, 1);
  EXPECT_NE(bad_value.second.find("point 1 (bits=5)"), std::string::npos) << bad_value.second;
  EXPECT_NE(bad_value.second.find("bits must be 2, 3, 4 or 8"), std::string::npos)
      << bad_value.second;
  const auto bad_key = list("colour = red\n");
  EXPECT_NE(bad_key.second.find("colour"), std::string::npos) << bad_key.second;
  test::write_text(dir / "base.ini", "model = synthetic:tiny\nshape = round\n");
  EXPECT_NE(list("bits = 4\n").second.find("shape"), std::string::npos);
}

}  // namespace
}  // namespace qshard
