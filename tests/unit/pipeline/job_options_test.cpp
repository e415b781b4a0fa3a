#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "qshard/core/error.hpp"
#include "qshard/pipeline/calibration.hpp"
#include "qshard/pipeline/job_options.hpp"

namespace qshard {
namespace {

JobOptions parse(const std::vector<std::string>& args) { return *parse_job_options(args).options; }

std::string error_of(const std::vector<std::string>& args) {
  try {
    parse_job_options(args);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(JobOptions, DefaultsAndCommandLine) {
  const JobOptions o =
      parse({"--bits", "3", "--group_size", "128", "--act_order", "--modules", "q,k,down"});
  EXPECT_EQ(o.gptq.quant.bits, 3);
  EXPECT_EQ(o.gptq.quant.group_size, 128);
  EXPECT_TRUE(o.gptq.act_order);
  EXPECT_FALSE(o.gptq.static_groups);
  EXPECT_TRUE(o.true_sequential);
  ASSERT_EQ(o.modules.size(), 3u);
  EXPECT_EQ(o.modules[2], Linear::Down);
  EXPECT_EQ(parse({}).modules.size(), 7u);
}

TEST(JobOptions, ConfigFileWithCommandLineWinning) {
  const auto path = std::filesystem::temp_directory_path() / "qshard_job_options_test.ini";
  {
    std::ofstream ini(path);
    ini << "# a preset\nbits = 3\ngroup_size = 32\nact_order = true\ndamp_percent = 0.05\n";
  }
  const JobOptions o = parse({"--config", path.string(), "--bits", "8"});
  EXPECT_EQ(o.gptq.quant.bits, 8);  // command line wins
  EXPECT_EQ(o.gptq.quant.group_size, 32);
  EXPECT_TRUE(o.gptq.act_order);
  EXPECT_DOUBLE_EQ(o.gptq.damp_percent, 0.05);
  {
    std::ofstream ini(path);
    ini << "bitz = 3\n";
  }
  EXPECT_NE(error_of({"--config", path.string()}).find("bitz"), std::string::npos);
  std::filesystem::remove(path);
}

// A mistyped key holding a Boost.Program_options placeholder made Boost's error message loop
// forever (found by the job_options fuzzer); such text is refused up front, naming where it is.
TEST(JobOptions, PlaceholderTextIsRefusedInsteadOfHangingBoost) {
  const auto path = std::filesystem::temp_directory_path() / "qshard_job_options_placeholder.ini";
  {
    std::ofstream ini(path);
    ini << "bits = 3\ngrou%canonical_option%p_size = -1\n";
  }
  const std::string file_error = error_of({"--config", path.string()});
  EXPECT_NE(file_error.find("line 2"), std::string::npos) << file_error;
  EXPECT_NE(file_error.find("%canonical_option%"), std::string::npos) << file_error;
  std::filesystem::remove(path);
  const std::string arg_error = error_of({"--bits=%value%"});
  EXPECT_NE(arg_error.find("%value%"), std::string::npos) << arg_error;
  // A lone percent sign is fine (it is no placeholder).
  EXPECT_EQ(error_of({"--out", "/tmp/100%/x.h5"}), "");
}

TEST(JobOptions, BadValuesAreRefusedByName) {
  EXPECT_NE(error_of({"--bits", "5"}).find("bits"), std::string::npos);
  EXPECT_NE(error_of({"--group_size", "0"}).find("group"), std::string::npos);
  EXPECT_NE(error_of({"--group_size", "-2"}).find("group"), std::string::npos);
  EXPECT_NE(error_of({"--no_such_option", "1"}).find("no_such_option"), std::string::npos);
  EXPECT_NE(error_of({"--modules", "q,zz"}).find("zz"), std::string::npos);
  EXPECT_NE(error_of({"--samples", "0"}).find("samples"), std::string::npos);
  EXPECT_NE(error_of({"--bits", "four"}).find("bits"), std::string::npos);
  EXPECT_NE(error_of({"--collectives", "gloo"}).find("collectives"), std::string::npos);
  EXPECT_EQ(parse({"--collectives", "mpi"}).collectives, "mpi");
}

// Issue 14's options: both spellings on the command line and in an INI file.
TEST(JobOptions, AllowExtraTensorsAndCollectiveTimeout) {
  const JobOptions defaults = parse({});
  EXPECT_FALSE(defaults.allow_extra_tensors);
  EXPECT_DOUBLE_EQ(defaults.collective_timeout, 1800.0);
  const JobOptions cli = parse({"--allow-extra-tensors", "--collective-timeout", "5"});
  EXPECT_TRUE(cli.allow_extra_tensors);
  EXPECT_DOUBLE_EQ(cli.collective_timeout, 5.0);
  const auto path = std::filesystem::temp_directory_path() / "qshard_job_options_faults.ini";
  {
    std::ofstream ini(path);
    ini << "allow_extra_tensors = true\ncollective_timeout = 60\n";
  }
  const JobOptions from_ini = parse({"--config", path.string()});
  EXPECT_TRUE(from_ini.allow_extra_tensors);
  EXPECT_DOUBLE_EQ(from_ini.collective_timeout, 60.0);
  std::filesystem::remove(path);
  EXPECT_NE(error_of({"--collective_timeout", "-1"}).find("collective_timeout"), std::string::npos);
  // Neither changes the result: a resumed job may set them differently.
  EXPECT_EQ(cli.result_key(), defaults.result_key());
}

TEST(JobOptions, ResultKeyIgnoresOutputAndThreads) {
  EXPECT_EQ(parse({"--out", "a.h5", "--threads", "2", "--collectives", "mpi"}).result_key(),
            parse({"--out", "b.h5"}).result_key());
  EXPECT_NE(parse({"--bits", "3"}).result_key(), parse({"--bits", "4"}).result_key());
}

// rows sampling takes the file's rows whole: a --seq_len other than their length is refused,
// saying what to give (issue 14).
TEST(Calibration, RowsSamplingNeedsTheFilesRowLength) {
  const auto dir = std::filesystem::temp_directory_path() / "qshard_calibration_rows";
  std::filesystem::create_directories(dir);
  const std::vector<std::int32_t> ids(8 * 32, 3);
  std::ofstream(dir / "calib_8x32.i32", std::ios::binary)
      .write(reinterpret_cast<const char*>(ids.data()),
             static_cast<std::streamsize>(4 * ids.size()));
  write_tokens_hdf5(dir / "calib.h5", "tokens", TokenSet{8, 32, ids});
  ModelConfig config;
  config.vocab_size = 16;
  config.max_position_embeddings = 64;
  for (const std::string file : {"calib_8x32.i32", "calib.h5"}) {
    JobOptions o = parse({"--calib", (dir / file).string(), "--samples", "4", "--seq_len", "16"});
    std::string e;
    try {
      load_calibration(o, config);
    } catch (const Error& error) {
      e = error.what();
    }
    EXPECT_NE(e.find("rows of 32 tokens"), std::string::npos) << e;
    EXPECT_NE(e.find("--seq_len 32"), std::string::npos) << e;
    EXPECT_NE(e.find("--calib_sampling random"), std::string::npos) << e;
    o.seq_len = 32;
    EXPECT_EQ(load_calibration(o, config).cols, 32);
    o.seq_len = 16;
    o.calib_sampling = "random";
    EXPECT_EQ(load_calibration(o, config).cols, 16);
  }
  std::filesystem::remove_all(dir);
}

TEST(Calibration, UnitsCoverEverySampleExactlyOnceForAnyRankCount) {
  for (const std::int64_t samples : {1, 7, 128}) {
    for (const std::int64_t batch : {1, 3, 8}) {
      const std::int64_t units = unit_count(samples, batch);
      for (int ranks = 1; ranks <= 9; ++ranks) {
        std::int64_t next = 0;
        for (int r = 0; r < ranks; ++r) {
          const UnitRange range = units_of_rank(units, r, ranks);
          ASSERT_EQ(range.first, next);
          next = range.last;
        }
        ASSERT_EQ(next, units);
        ASSERT_GE(units * batch, samples);
        ASSERT_LT((units - 1) * batch, samples);
      }
    }
  }
}

}  // namespace
}  // namespace qshard
