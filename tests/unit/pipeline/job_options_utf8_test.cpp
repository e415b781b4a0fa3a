// Found by the job_options fuzzer (tests/fuzz): a path option that is not UTF-8 (a valid file name
// on Linux) was accepted, then JobOptions::to_json() threw nlohmann's type_error 316 when the job
// wrote job.json or, for --out, the checkpoint's @job_config after the last layer.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "qshard/core/error.hpp"
#include "qshard/pipeline/job_options.hpp"

namespace qshard {
namespace {

std::string error_of(const std::vector<std::string>& args) {
  try {
    const ParsedOptions parsed = parse_job_options(args);
    (void)parsed.options->to_json();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(JobOptionsUtf8, PathsThatAreNotUtf8AreRefusedNamingTheKey) {
  for (const char* key : {"--out", "--model", "--calib"}) {
    const std::string message = error_of({key, "caf\xe9.h5"});
    EXPECT_NE(message.find(std::string(key + 2) + ": not valid UTF-8"), std::string::npos)
        << key << ": " << message;
  }
}

TEST(JobOptionsUtf8, Utf8PathsAreRecorded) {
  const ParsedOptions parsed = parse_job_options({"--out", "caf\xc3\xa9.h5"});
  EXPECT_NE(parsed.options->to_json().find("caf\xc3\xa9.h5"), std::string::npos);
}

}  // namespace
}  // namespace qshard
