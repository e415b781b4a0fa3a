// The CUDA GPTQ solver against the CPU solver: factor, every option, block sizes and group rules,
// determinism, row independence, the device factor cache, errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "cuda_solver.hpp"
#include "gptq_problems.hpp"
#include "gpu_test_support.hpp"
#include "qshard/backend/cpu_backend.hpp"
#include "qshard/quant/solver.hpp"

namespace qshard {
namespace {

GptqOptions options_for(int bits, std::int64_t group, bool act_order, bool static_groups, bool sym,
                        bool mse = false, GroupScaleRule rule = GroupScaleRule::Exact,
                        std::int64_t block = 128) {
  GptqOptions o;
  o.quant.bits = bits;
  o.quant.group_size = group;
  o.quant.sym = sym;
  o.quant.mse = mse;
  o.act_order = act_order;
  o.static_groups = static_groups;
  o.group_rule = rule;
  o.block_size = block;
  return o;
}

std::string describe_case(const GptqOptions& o) { return describe(o); }

double max_relative_difference(const MatrixD& a, const MatrixD& b) {
  double scale = 0.0, diff = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    scale = std::max(scale, std::abs(a.data()[i]));
    diff = std::max(diff, std::abs(a.data()[i] - b.data()[i]));
  }
  return diff / std::max(scale, 1e-300);
}

// Compares one configuration with the CPU solver; returns (objective ratio, code agreement).
std::pair<double, double> compare_with_cpu(const test::Problem& p, const GptqOptions& o,
                                           const Solver& cpu, const Solver& gpu) {
  const QuantizedWeight expected = cpu.solve(p.weight, cpu.factorize(p.hessian, o), o);
  const QuantizedWeight actual = gpu.solve(p.weight, gpu.factorize(p.hessian, o), o);
  EXPECT_EQ(actual.g_idx, expected.g_idx);
  EXPECT_EQ(actual.codes.rows(), expected.codes.rows());
  EXPECT_EQ(actual.scales.cols(), expected.scales.cols());
  const double cpu_objective = reconstruction_objective(p.weight, expected.dequantize(), p.hessian);
  const double gpu_objective = reconstruction_objective(p.weight, actual.dequantize(), p.hessian);
  return {gpu_objective / cpu_objective, test::code_agreement(actual, expected)};
}

TEST(CudaSolver, FactorMatchesCpu) {
  QSHARD_REQUIRE_GPU();
  const auto cpu = make_cpu_solver();
  const cuda::CudaSolver gpu(0);
  for (const std::int64_t n : {64, 300, 1024}) {
    const test::Problem p = test::make_problem(1000 + static_cast<std::uint64_t>(n), 8, n);
    for (const bool act_order : {false, true}) {
      SCOPED_TRACE(str("n ", n, act_order ? " act_order" : ""));
      const GptqOptions o = options_for(4, 128, act_order, false, false);
      const HessianFactor a = cpu->factorize(p.hessian, o);
      const HessianFactor b = gpu.factorize(p.hessian, o);
      EXPECT_EQ(a.perm, b.perm);
      EXPECT_EQ(a.dead, b.dead);
      EXPECT_EQ(a.damp_percent_used, b.damp_percent_used);
      EXPECT_EQ(a.damp_steps, b.damp_steps);
      const double rel = max_relative_difference(a.hinv_upper, b.hinv_upper);
      std::printf("[factor] n=%lld act_order=%d max |U_gpu - U_cpu| / max |U| = %.3g\n",
                  static_cast<long long>(n), act_order ? 1 : 0, rel);
      EXPECT_LT(rel, 1e-9);
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < i; ++j) ASSERT_EQ(b.hinv_upper(i, j), 0.0);
    }
  }
}

TEST(CudaSolver, FactorDeadColumnsAndDampingSteps) {
  QSHARD_REQUIRE_GPU();
  const auto cpu = make_cpu_solver();
  const cuda::CudaSolver gpu(0);
  // An indefinite H (rank-deficient minus 5% of its mean diagonal) with two dead inputs and no
  // initial damping: damping 0 and 0.01 fail clearly, 0.1 succeeds (two steps).
  test::Problem p = test::make_problem(7, 8, 64, false, 8);
  for (const std::int64_t dead : {3, 40}) {
    for (std::int64_t j = 0; j < 64; ++j) {
      p.hessian(dead, j) = 0.0;
      p.hessian(j, dead) = 0.0;
    }
  }
  double mean = 0.0;
  for (std::int64_t i = 0; i < 64; ++i) mean += p.hessian(i, i) == 0.0 ? 1.0 : p.hessian(i, i);
  mean /= 64.0;
  for (std::int64_t i = 0; i < 64; ++i)
    if (p.hessian(i, i) != 0.0) p.hessian(i, i) -= 0.05 * mean;
  GptqOptions o = options_for(4, 32, true, false, false);
  o.damp_percent = 0.0;
  const HessianFactor a = cpu->factorize(p.hessian, o);
  const HessianFactor b = gpu.factorize(p.hessian, o);
  EXPECT_EQ(a.dead, b.dead);
  EXPECT_EQ(b.dead[3], 1);
  EXPECT_EQ(a.perm, b.perm);
  EXPECT_EQ(a.damp_steps, b.damp_steps);
  EXPECT_EQ(b.damp_steps, 2);
  EXPECT_EQ(a.damp_percent_used, b.damp_percent_used);
  std::printf("[factor] rank-deficient: damp %g after %d steps\n", b.damp_percent_used,
              b.damp_steps);
  EXPECT_LT(max_relative_difference(a.hinv_upper, b.hinv_upper), 1e-8);
  const QuantizedWeight qa = cpu->solve(p.weight, a, o);
  const QuantizedWeight qb = gpu.solve(p.weight, b, o);
  EXPECT_GE(test::code_agreement(qa, qb), 0.99);
}

TEST(CudaSolver, MatchesCpuSolverForEveryOption) {
  QSHARD_REQUIRE_GPU();
  const test::Problem p = test::make_problem(20240601, 96, 384);
  const auto cpu = make_cpu_solver();
  const cuda::CudaSolver gpu(0);
  double worst_ratio = 0.0, worst_agreement = 1.0;
  for (const int bits : {2, 3, 4, 8})
    for (const std::int64_t group : {-1, 32, 128})
      for (const bool act_order : {false, true})
        for (const bool static_groups : {false, true})
          for (const bool sym : {false, true}) {
            const GptqOptions o = options_for(bits, group, act_order, static_groups, sym);
            SCOPED_TRACE(describe_case(o));
            const auto [ratio, agreement] = compare_with_cpu(p, o, *cpu, gpu);
            EXPECT_LT(std::abs(ratio - 1.0), 0.005) << "objective gpu/cpu " << ratio;
            EXPECT_GE(agreement, 0.99);
            worst_ratio = std::max(worst_ratio, std::abs(ratio - 1.0));
            worst_agreement = std::min(worst_agreement, agreement);
          }
  std::printf(
      "[solver] 96 configurations: worst |objective ratio - 1| = %.3g, worst code "
      "agreement = %.5f\n",
      worst_ratio, worst_agreement);
}

TEST(CudaSolver, MatchesCpuWithMseAndGroupRulesAndBlockSizes) {
  QSHARD_REQUIRE_GPU();
  const test::Problem p = test::make_problem(77, 64, 520);  // 520: partial last group and batch
  const auto cpu = make_cpu_solver();
  const cuda::CudaSolver gpu(0);
  for (const std::int64_t block : {32, 128, 200, 256})
    for (const std::int64_t group : {32, 100, 128, 300})
      for (const GroupScaleRule rule : {GroupScaleRule::Exact, GroupScaleRule::Reference})
        for (const bool act_order : {false, true})
          for (const bool mse : {false, true}) {
            if (mse && block != 128) continue;  // the grid search is slow on the CPU
            const GptqOptions o = options_for(4, group, act_order, false, false, mse, rule, block);
            SCOPED_TRACE(describe_case(o));
            const auto [ratio, agreement] = compare_with_cpu(p, o, *cpu, gpu);
            EXPECT_LT(std::abs(ratio - 1.0), 0.005) << "objective gpu/cpu " << ratio;
            EXPECT_GE(agreement, 0.99);
          }
}

TEST(CudaSolver, BitwiseDeterministic) {
  QSHARD_REQUIRE_GPU();
  const test::Problem p = test::make_problem(99, 200, 512);
  const cuda::CudaSolver gpu(0);
  for (const bool act_order : {false, true}) {
    const GptqOptions o = options_for(4, 128, act_order, false, false);
    const HessianFactor f1 = gpu.factorize(p.hessian, o);
    const HessianFactor f2 = gpu.factorize(p.hessian, o);
    EXPECT_EQ(f1.hinv_upper, f2.hinv_upper);
    const QuantizedWeight a = gpu.solve(p.weight, f1, o);
    const QuantizedWeight b = gpu.solve(p.weight, f2, o);
    EXPECT_TRUE(test::bitwise_equal(a, b));
    // A second solver object (fresh handles) gives the same bits.
    const cuda::CudaSolver other(0);
    EXPECT_TRUE(test::bitwise_equal(a, other.solve(p.weight, other.factorize(p.hessian, o), o)));
  }
}

TEST(CudaSolver, RowResultsIndependentOfTheOtherRows) {
  QSHARD_REQUIRE_GPU();
  const test::Problem p = test::make_problem(5, 300, 384);
  const cuda::CudaSolver gpu(0);
  for (const bool act_order : {false, true})
    for (const std::int64_t group : {-1, 100}) {
      const GptqOptions o = options_for(3, group, act_order, false, true);
      const HessianFactor f = gpu.factorize(p.hessian, o);
      const QuantizedWeight all = gpu.solve(p.weight, f, o);
      for (const auto& [begin, end] :
           {std::pair<std::int64_t, std::int64_t>{0, 1}, {37, 107}, {128, 256}, {250, 300}}) {
        MatrixF tile(end - begin, p.weight.cols());
        for (std::int64_t r = begin; r < end; ++r)
          for (std::int64_t c = 0; c < p.weight.cols(); ++c) tile(r - begin, c) = p.weight(r, c);
        EXPECT_TRUE(test::bitwise_equal(gpu.solve(tile, f, o), all.slice_rows(begin, end)))
            << "rows [" << begin << ", " << end << ")";
      }
    }
}

// The objective on the device against the host's double reconstruction_objective, and its H
// cache: the same buffer with other contents is not mistaken for the cached H.
TEST(CudaSolver, ObjectiveMatchesTheHostAndRefreshesChangedHessians) {
  QSHARD_REQUIRE_GPU();
  const cuda::CudaSolver solver(0);
  test::Problem p = test::make_problem(31, 128, 384);
  GptqOptions o;
  o.quant.bits = 3;
  o.quant.group_size = 64;
  const MatrixF q = quantize_rtn(p.weight, o.quant).dequantize();
  const double host = reconstruction_objective(p.weight, q, p.hessian);
  const double device = solver.objective(p.weight, q, p.hessian);
  std::printf("[objective] host %.12g device %.12g\n", host, device);
  EXPECT_NEAR(device, host, 1e-10 * host);
  EXPECT_TRUE(solver.rows_independent());
  for (double& v : p.hessian.values()) v *= 2.0;  // same buffer, new contents
  EXPECT_NEAR(solver.objective(p.weight, q, p.hessian), 2.0 * host, 1e-10 * host);
  EXPECT_THROW(solver.objective(p.weight, MatrixF(3, 3), p.hessian), Error);
}

TEST(CudaSolver, SolvesCpuFactorsAndReusesItsOwn) {
  QSHARD_REQUIRE_GPU();
  const test::Problem p = test::make_problem(11, 64, 256);
  const auto cpu = make_cpu_solver();
  const cuda::CudaSolver gpu(0);
  const GptqOptions o = options_for(4, 64, true, false, false);
  const HessianFactor cpu_factor = cpu->factorize(p.hessian, o);
  const HessianFactor gpu_factor = gpu.factorize(p.hessian, o);
  const QuantizedWeight from_cpu_factor = gpu.solve(p.weight, cpu_factor, o);  // uploaded
  const QuantizedWeight from_gpu_factor = gpu.solve(p.weight, gpu_factor, o);  // cached
  EXPECT_GE(test::code_agreement(from_cpu_factor, from_gpu_factor), 0.99);
  // A copy (another buffer) is uploaded again and gives the same bits as the cached original.
  const HessianFactor copy = gpu_factor;
  EXPECT_TRUE(test::bitwise_equal(gpu.solve(p.weight, copy, o), from_gpu_factor));
  // A modified factor at the same address is not mistaken for the cached one.
  HessianFactor changed = gpu.factorize(p.hessian, o);
  const QuantizedWeight before = gpu.solve(p.weight, changed, o);
  // (Scaling a whole row of U would change nothing: the error and its propagation compensate.)
  for (std::int64_t j = 1; j < changed.columns; ++j) changed.hinv_upper(0, j) *= 3.0;
  changed.damp_steps += 1;  // part of the fingerprint
  const QuantizedWeight after = gpu.solve(p.weight, changed, o);
  EXPECT_FALSE(test::bitwise_equal(before, after));
}

TEST(CudaSolver, ReportsBadInputs) {
  QSHARD_REQUIRE_GPU();
  const cuda::CudaSolver gpu(0);
  test::Problem p = test::make_problem(3, 16, 64);
  const GptqOptions o = options_for(4, 32, false, false, false);
  MatrixD bad_h = p.hessian;
  bad_h(5, 7) = std::nan("");
  EXPECT_THROW(
      {
        try {
          gpu.factorize(bad_h, o);
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("non-finite"), std::string::npos) << e.what();
          throw;
        }
      },
      Error);
  MatrixD negative(64, 64, 0.0);
  for (std::int64_t i = 0; i < 64; ++i) negative(i, i) = -1.0;
  EXPECT_THROW(gpu.factorize(negative, o), Error);
  const HessianFactor f = gpu.factorize(p.hessian, o);
  MatrixF bad_w = p.weight;
  bad_w(3, 9) = INFINITY;
  EXPECT_THROW(
      {
        try {
          gpu.solve(bad_w, f, o);
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("(3, 9)"), std::string::npos) << e.what();
          throw;
        }
      },
      Error);
  EXPECT_THROW(gpu.solve(MatrixF(4, 63), f, o), Error);
  // Empty row ranges are fine.
  EXPECT_EQ(gpu.solve(MatrixF(0, 64), f, o).rows(), 0);
}

}  // namespace
}  // namespace qshard

namespace qshard {
namespace {

// A sparse layer's many factorisations overlapped on helper solvers: each result bitwise the
// solver's own factorize() of the same Hessian (U, permutation, damping), whatever helper ran it,
// and a bad Hessian's error reported as factorize() reports it.
TEST(CudaSolver, ManyFactorisationsAtOnceEqualOneAtATimeBitwise) {
  QSHARD_REQUIRE_GPU();
  const cuda::CudaSolver gpu(0);
  std::vector<std::shared_ptr<const Hessian>> owned;
  std::vector<const Hessian*> hessians;
  for (std::uint64_t i = 0; i < 9; ++i) {
    const std::int64_t n = i % 3 == 0 ? 512 : 192;  // two shapes interleaved, as gate/up and down
    owned.push_back(make_host_hessian(test::make_problem(300 + i, 4, n).hessian));
    hessians.push_back(owned.back().get());
  }
  for (const bool act_order : {false, true}) {
    const GptqOptions o = options_for(4, 64, act_order, false, false);
    const std::vector<std::shared_ptr<const Factorization>> many = gpu.factorize_many(hessians, o);
    ASSERT_EQ(many.size(), hessians.size());
    for (std::size_t i = 0; i < hessians.size(); ++i) {
      SCOPED_TRACE(str("hessian ", i, act_order ? " act_order" : ""));
      const auto one = gpu.factorize(*hessians[i], o);
      const auto& a = dynamic_cast<const cuda::DeviceFactor&>(*many[i]);
      const auto& b = dynamic_cast<const cuda::DeviceFactor&>(*one);
      EXPECT_EQ(a.perm, b.perm);
      EXPECT_EQ(a.dead, b.dead);
      EXPECT_EQ(a.damp_percent_used, b.damp_percent_used);
      std::vector<float> ua(a.hinv_upper.size()), ub(b.hinv_upper.size());
      ASSERT_EQ(ua.size(), ub.size());
      a.hinv_upper.download(ua.data(), ua.size(), gpu.stream());
      b.hinv_upper.download(ub.data(), ub.size(), gpu.stream());
      ASSERT_EQ(cudaStreamSynchronize(gpu.stream()), cudaSuccess);
      EXPECT_EQ(ua, ub) << "U differs from the one-at-a-time factorisation";
    }
  }
  MatrixD bad = test::make_problem(399, 4, 192).hessian;
  bad(3, 3) = std::nan("");
  owned.push_back(make_host_hessian(bad));
  hessians.push_back(owned.back().get());
  EXPECT_THROW((void)gpu.factorize_many(hessians, options_for(4, 64, false, false, false)), Error);
}

}  // namespace
}  // namespace qshard
