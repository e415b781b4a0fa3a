// The backend factory the apps share: the evaluation's backend (qshard-eval --backend, qshard-sweep
// --eval_backend) and its refusals.
#include <gtest/gtest.h>

#include <string>

#include "qshard/core/error.hpp"
#include "qshard/pipeline/backend_factory.hpp"

namespace qshard {
namespace {

TEST(EvaluationBackend, CpuRunsTheEvaluationsOwnForward) {
  const EvaluationBackend cpu = make_evaluation_backend("cpu");
  EXPECT_EQ(cpu.backend, nullptr);
  EXPECT_FALSE(cpu.runner);
  const EvaluationBackend automatic = make_evaluation_backend("auto");
  ASSERT_NE(automatic.backend, nullptr);
  // Without a GPU (CI) auto is the CPU backend, whose layers are the evaluation's own forward;
  // with one, a runner forwards each layer on it.
  EXPECT_EQ(static_cast<bool>(automatic.runner), automatic.backend->name() != "cpu");
}

TEST(EvaluationBackend, UnknownKindIsRefusedByName) {
  try {
    (void)make_evaluation_backend("gpu");
    FAIL() << "an unknown backend was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "unknown backend 'gpu' (expected cpu, cuda or auto)");
  }
}

}  // namespace
}  // namespace qshard
