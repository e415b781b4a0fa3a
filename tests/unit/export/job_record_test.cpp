// The checkpoint header (io/job_record.hpp): every attribute round-trips through HDF5, a file
// written before an attribute existed reads with it empty, and @job_config's settings are typed
// with errors that name the file and the field.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "export_test_support.hpp"
#include "qshard/io/hdf5.hpp"
#include "qshard/io/job_record.hpp"

namespace qshard {
namespace {

nlohmann::json settings_json() {
  return {{"method", "gptq"},          {"bits", 3},
          {"group_size", -1},          {"sym", true},
          {"act_order", true},         {"static_groups", false},
          {"true_sequential", false},  {"damp_percent", 0.05},
          {"model", "synthetic:tiny"}, {"model_seed", 7}};
}

JobRecord full_record() {
  JobRecord r;
  r.qshard_version = "9.9.9";
  r.git_commit = "abc123";
  r.command_line = "qshard-quantize --bits 3";
  r.job_config = settings_json().dump(2);
  r.model_config = R"({"model_type": "llama"})";
  r.model_source = "synthetic tiny";
  r.ranks = 4;
  r.backend = "cuda";
  r.calibration_seed = 11;
  r.calibration_hash = "0123456789abcdef";
  r.calibration_samples = 128;
  r.calibration_seq_len = 2048;
  r.created_utc = "2026-12-04T03:00:00Z";
  r.seconds = 12.5;
  r.layers = 2;
  r.objective_gptq = {1.5, 2.5};
  r.objective_rtn = {3.0, 4.0};
  return r;
}

JobRecord round_trip(const JobRecord& record, const test::TempDir& dir) {
  const auto path = dir / "r.h5";
  {
    const h5::File file = h5::File::create(path);
    record.write(file.root());
  }
  return JobRecord::read(h5::File::open_read(path).root());
}

TEST(JobRecord, EveryAttributeRoundTrips) {
  h5::silence_library_errors();
  const test::TempDir dir;
  const JobRecord written = full_record();
  const JobRecord read = round_trip(written, dir);
  EXPECT_EQ(read.qshard_version, written.qshard_version);
  EXPECT_EQ(read.git_commit, written.git_commit);
  EXPECT_EQ(read.command_line, written.command_line);
  EXPECT_EQ(read.job_config, written.job_config);
  EXPECT_EQ(read.model_config, written.model_config);
  EXPECT_EQ(read.model_source, written.model_source);
  EXPECT_EQ(read.ranks, 4);
  EXPECT_EQ(read.backend, "cuda");
  EXPECT_EQ(read.calibration_seed, 11);
  EXPECT_EQ(read.calibration_hash, written.calibration_hash);
  EXPECT_EQ(read.calibration_samples, 128);
  EXPECT_EQ(read.calibration_seq_len, 2048);
  EXPECT_EQ(read.created_utc, written.created_utc);
  EXPECT_EQ(read.seconds, 12.5);
  EXPECT_EQ(read.layers, 2);
  EXPECT_EQ(read.objective_gptq, written.objective_gptq);
  EXPECT_EQ(read.objective_rtn, written.objective_rtn);

  const RecordedSettings s = read.settings("r.h5");
  EXPECT_EQ(s.method, "gptq");
  EXPECT_EQ(s.bits, 3);
  EXPECT_EQ(s.group_size, -1);
  EXPECT_TRUE(s.sym);
  EXPECT_TRUE(s.act_order);
  EXPECT_FALSE(s.static_groups);
  EXPECT_FALSE(s.true_sequential);
  EXPECT_EQ(s.damp_percent, 0.05);
  EXPECT_EQ(s.model, "synthetic:tiny");
  EXPECT_EQ(s.model_seed, 7u);
}

TEST(JobRecord, AttributesAFileLacksReadAsEmpty) {
  h5::silence_library_errors();
  const test::TempDir dir;
  const auto path = dir / "old.h5";
  {
    const h5::File file = h5::File::create(path);
    file.root().set_attr("backend", std::string("cpu"));
  }
  const JobRecord r = JobRecord::read(h5::File::open_read(path).root());
  EXPECT_EQ(r.backend, "cpu");
  EXPECT_TRUE(r.job_config.empty());
  EXPECT_EQ(r.ranks, 0);
  EXPECT_TRUE(r.objective_gptq.empty());
  try {
    (void)r.settings(path);
    FAIL() << "settings() of a file without @job_config";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("old.h5 @job_config: missing"), std::string::npos)
        << e.what();
  }
}

TEST(JobRecord, SettingsErrorsNameTheFileAndTheField) {
  const auto message = [](const nlohmann::json& job) {
    JobRecord r;
    r.job_config = job.dump();
    try {
      (void)r.settings("ckpt.h5");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  for (const char* key : {"method", "bits", "group_size", "sym", "act_order", "static_groups",
                          "true_sequential", "damp_percent", "model", "model_seed"}) {
    nlohmann::json job = settings_json();
    job.erase(key);
    EXPECT_EQ(message(job), std::string("ckpt.h5 @job_config: missing '") + key + "'");
  }
  nlohmann::json job = settings_json();
  job["bits"] = "4";
  EXPECT_EQ(message(job), "ckpt.h5 @job_config: 'bits' must be an integer");
  job = settings_json();
  job["act_order"] = 1;
  EXPECT_EQ(message(job), "ckpt.h5 @job_config: 'act_order' must be true or false");
  job = settings_json();
  job["model_seed"] = -1;
  EXPECT_EQ(message(job), "ckpt.h5 @job_config: 'model_seed' must be a non-negative integer");
  JobRecord broken;
  broken.job_config = "{not json";
  EXPECT_THROW((void)broken.settings("ckpt.h5"), Error);
}

}  // namespace
}  // namespace qshard
