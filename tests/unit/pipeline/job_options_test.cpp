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

TEST(JobOptions, ResultKeyIgnoresOutputAndThreads) {
  EXPECT_EQ(parse({"--out", "a.h5", "--threads", "2", "--collectives", "mpi"}).result_key(),
            parse({"--out", "b.h5"}).result_key());
  EXPECT_NE(parse({"--bits", "3"}).result_key(), parse({"--bits", "4"}).result_key());
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
