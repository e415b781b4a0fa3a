// The blocked CPU solver against the column-by-column double-precision reference, RTN, and the
// properties GPTQ must have.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <random>

#include "gptq_problems.hpp"
#include "qshard/backend/cpu_backend.hpp"
#include "qshard/quant/solver.hpp"
#include "reference_gptq.hpp"

namespace qshard {
namespace {

double agreement(const QuantizedWeight& a, const QuantizedWeight& b) {
  std::size_t same = 0;
  for (std::size_t i = 0; i < a.codes.size(); ++i) same += a.codes.data()[i] == b.codes.data()[i];
  return static_cast<double>(same) / static_cast<double>(a.codes.size());
}

// A fixed problem, so a failure reproduces; QSHARD_TEST_SEED=N tries another one.
std::uint64_t problem_seed() {
  const char* seed = std::getenv("QSHARD_TEST_SEED");
  return seed != nullptr ? std::stoull(seed) : 20261204;
}

struct Combination {
  int bits;
  std::int64_t group;
  bool act_order, static_groups, sym;
  GroupScaleRule rule;
};

std::string name(const Combination& c) {
  return str(c.bits, "-bit g", c.group, c.act_order ? " act_order" : "",
             c.static_groups ? " static" : "", c.sym ? " sym" : " asym",
             c.rule == GroupScaleRule::Exact ? " exact" : " reference");
}

TEST(GptqSolver, MatchesColumnByColumnReferenceForEveryOption) {
  const std::uint64_t seed = problem_seed();
  SCOPED_TRACE(str("seed ", seed));
  const test::Problem p = test::make_problem(seed, 64, 256);
  const auto solver = make_cpu_solver();
  int checked = 0;
  for (const int bits : {2, 3, 4, 8})
    for (const std::int64_t group : {-1, 32, 128})
      for (const bool act_order : {false, true})
        for (const bool static_groups : {false, true})
          for (const bool sym : {false, true})
            for (const GroupScaleRule rule : {GroupScaleRule::Exact, GroupScaleRule::Reference}) {
              const Combination c{bits, group, act_order, static_groups, sym, rule};
              SCOPED_TRACE(name(c));
              GptqOptions o;
              o.quant.bits = bits;
              o.quant.group_size = group;
              o.quant.sym = sym;
              o.act_order = act_order;
              o.static_groups = static_groups;
              o.group_rule = rule;
              o.block_size = 128;
              const QuantizedWeight blocked =
                  solver->solve(p.weight, solver->factorize(p.hessian, o), o);
              const QuantizedWeight ref = reference::gptq(p.weight, p.hessian, o).weight;
              EXPECT_GE(agreement(blocked, ref), 0.999);
              if (rule == GroupScaleRule::Exact) {
                for (const std::int64_t block : {32, 64}) {
                  GptqOptions ob = o;
                  ob.block_size = block;
                  const QuantizedWeight other =
                      solver->solve(p.weight, solver->factorize(p.hessian, ob), ob);
                  EXPECT_EQ(other.codes, blocked.codes) << "block " << block;
                  EXPECT_EQ(other.scales, blocked.scales) << "block " << block;
                }
              }
              const double ob = reconstruction_objective(p.weight, blocked.dequantize(), p.hessian);
              const double orf = reconstruction_objective(p.weight, ref.dequantize(), p.hessian);
              EXPECT_NEAR(ob, orf, 1e-4 * orf);
              EXPECT_EQ(blocked.g_idx, ref.g_idx);
              const double rtn = reconstruction_objective(
                  p.weight, quantize_rtn(p.weight, o.quant).dequantize(), p.hessian);
              // At 2 bits with groups chosen during the solve (not static), a group's range is
              // taken from weights the earlier columns' errors have moved, and GPTQ's objective can
              // exceed RTN's: it did on 5 of 80 random problems (an 80-seed hunt on 2026-12-04).
              if (bits > 2 || group < 0 || static_groups) {
                EXPECT_LT(ob, rtn);
              }
              ++checked;
            }
  EXPECT_EQ(checked, 192);
}

TEST(GptqSolver, LargeProblemMatchesReference) {
  const std::uint64_t seed = problem_seed();
  SCOPED_TRACE(str("seed ", seed));
  const test::Problem p = test::make_problem(seed, 512, 1024);
  const auto solver = make_cpu_solver();
  for (const bool act_order : {false, true}) {
    GptqOptions o;
    o.quant.bits = 4;
    o.quant.group_size = 128;
    o.act_order = act_order;
    const QuantizedWeight blocked = solver->solve(p.weight, solver->factorize(p.hessian, o), o);
    // The reference is O(rows * cols^2) in plain loops: check a row subset against it.
    const MatrixF rows(64, 1024, std::vector<float>(p.weight.data(), p.weight.data() + 64 * 1024));
    const QuantizedWeight ref = reference::gptq(rows, p.hessian, o).weight;
    EXPECT_GE(agreement(blocked.slice_rows(0, 64), ref), 0.999);
    const double ratio =
        reconstruction_objective(p.weight, blocked.dequantize(), p.hessian) /
        reconstruction_objective(p.weight, quantize_rtn(p.weight, o.quant).dequantize(), p.hessian);
    std::cout << "512x1024 4-bit g128" << (act_order ? " act_order" : "") << ": GPTQ/RTN objective "
              << ratio << '\n';
    EXPECT_LE(ratio, 0.7);
  }
}

TEST(GptqSolver, ExactRuleIsIndependentOfBlockSize) {
  const std::uint64_t seed = problem_seed();
  SCOPED_TRACE(str("seed ", seed));
  const test::Problem p = test::make_problem(seed, 48, 200);  // groups straddle batches too
  const auto solver = make_cpu_solver();
  for (const std::int64_t group : {32, 48, 100}) {
    GptqOptions o;
    o.quant.bits = 3;
    o.quant.group_size = group;
    o.act_order = group == 48;
    std::vector<QuantizedWeight> results;
    for (const std::int64_t block : {32, 64, 128}) {
      o.block_size = block;
      results.push_back(solver->solve(p.weight, solver->factorize(p.hessian, o), o));
    }
    EXPECT_EQ(results[0].codes, results[1].codes) << "group " << group;
    EXPECT_EQ(results[0].codes, results[2].codes) << "group " << group;
    EXPECT_EQ(results[0].scales, results[2].scales) << "group " << group;
  }
}

// Without act_order a large input channel that happens to sit near the end cannot be compensated
// by later columns, so single problems reach ratios of ~0.4-0.6 (seen in 1 of ~100); with act_order
// (large channels first) the worst seen in 300 problems was 0.11. Hence: act_order on every
// problem, natural order on the median of three.
TEST(GptqSolver, GptqRatioAtFourBitsGroup128OnCorrelatedProblems) {
  const auto solver = make_cpu_solver();
  for (const bool act_order : {false, true}) {
    std::vector<double> ratios;
    for (int trial = 0; trial < 3; ++trial) {
      const std::uint64_t seed = problem_seed();
      SCOPED_TRACE(str("seed ", seed));
      const test::Problem p = test::make_problem(seed, 128, 512);
      GptqOptions o;
      o.quant.bits = 4;
      o.quant.group_size = 128;
      o.act_order = act_order;
      const QuantizedWeight q = solver->solve(p.weight, solver->factorize(p.hessian, o), o);
      const double ratio = reconstruction_objective(p.weight, q.dequantize(), p.hessian) /
                           reconstruction_objective(
                               p.weight, quantize_rtn(p.weight, o.quant).dequantize(), p.hessian);
      std::cout << "128x512 4-bit g128" << (act_order ? " act_order" : "")
                << ": GPTQ/RTN objective " << ratio << '\n';
      ::testing::Test::RecordProperty(str("gptq_rtn_ratio", act_order ? "_act_order_" : "_", trial),
                                      str(ratio));
      EXPECT_LT(ratio, 1.0);
      if (act_order) {
        EXPECT_LE(ratio, 0.7);
      }
      ratios.push_back(ratio);
    }
    std::sort(ratios.begin(), ratios.end());
    EXPECT_LE(ratios[1], 0.7) << "median of three";
  }
}

TEST(GptqSolver, IdentityHessianWithoutDampingIsRtn) {
  const test::Problem p = test::make_problem(problem_seed(), 32, 96);
  MatrixD identity(96, 96);
  for (std::int64_t i = 0; i < 96; ++i) identity(i, i) = 1.0;
  const auto solver = make_cpu_solver();
  for (const std::int64_t group : {-1, 32}) {
    for (const bool act_order : {false, true}) {
      GptqOptions o;
      o.quant.bits = 3;
      o.quant.group_size = group;
      o.damp_percent = 0.0;
      o.act_order = act_order;
      const HessianFactor f = solver->factorize(identity, o);
      EXPECT_EQ(f.damp_steps, 0);
      const QuantizedWeight q = solver->solve(p.weight, f, o);
      const QuantizedWeight rtn = quantize_rtn(p.weight, o.quant);
      EXPECT_EQ(q.codes, rtn.codes);
      EXPECT_EQ(q.scales, rtn.scales);
      EXPECT_EQ(q.zeros, rtn.zeros);
    }
  }
}

TEST(GptqSolver, RankDeficientHessianRaisesDampingAndReportsIt) {
  const test::Problem p =
      test::make_problem(problem_seed(), 16, 64, true, /*tokens=*/20);  // rank 20 < 64
  const auto solver = make_cpu_solver();
  GptqOptions o;
  o.damp_percent = 0.0;
  const HessianFactor f = solver->factorize(p.hessian, o);
  EXPECT_GE(f.damp_steps, 1);
  EXPECT_GT(f.damp_percent_used, 0.0);
  const reference::Result ref = reference::gptq(p.weight, p.hessian, o);
  EXPECT_DOUBLE_EQ(f.damp_percent_used, ref.damp_used);

  // Duplicated input channels (X has enough tokens): singular H, one damping step suffices.
  {
    const std::uint64_t seed = problem_seed();
    SCOPED_TRACE(str("seed ", seed));
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal;
    MatrixD x(256, 48);
    for (double& v : x.values()) v = normal(rng);
    for (std::int64_t t = 0; t < 256; ++t) {
      x(t, 40) = x(t, 3);
      x(t, 41) = x(t, 7);
      x(t, 47) = -2.0 * x(t, 3);
    }
    const MatrixD h = test::hessian_of(x);
    for (const bool act_order : {false, true}) {
      o.act_order = act_order;
      const HessianFactor dup = solver->factorize(h, o);
      EXPECT_EQ(dup.damp_steps, 1);
      EXPECT_DOUBLE_EQ(dup.damp_percent_used, 0.01);
      EXPECT_DOUBLE_EQ(reference::gptq(MatrixF(4, 48, 0.01f), h, o).damp_used, 0.01);
    }
    o.act_order = false;
  }

  // Indefinite H: needs a large damping, and a bound that is too small gives a clear error.
  MatrixD indefinite(8, 8);  // eigenvalues 1 (x6), 4 and -2: needs lambda > 2 = 2 * mean(diag)
  for (std::int64_t i = 0; i < 8; ++i) indefinite(i, i) = 1.0;
  indefinite(0, 1) = indefinite(1, 0) = 3.0;
  o.damp_percent = 0.01;
  const HessianFactor big = solver->factorize(indefinite, o);
  EXPECT_EQ(big.damp_steps, 3);  // 0.01 -> 0.1 -> 1 -> 10
  EXPECT_DOUBLE_EQ(big.damp_percent_used, 10.0);
  std::cout << "indefinite H: damp_percent raised to " << big.damp_percent_used << " in "
            << big.damp_steps << " steps\n";
  o.max_damp_steps = 1;
  try {
    solver->factorize(indefinite, o);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not positive definite"), std::string::npos) << e.what();
  }
}

TEST(GptqSolver, RefusesNonFiniteHessianAndDeadColumnsAreZero) {
  const auto solver = make_cpu_solver();
  MatrixD h(4, 4);
  for (std::int64_t i = 0; i < 4; ++i) h(i, i) = 1.0;
  h(2, 1) = std::nan("");
  try {
    solver->factorize(h, GptqOptions{});
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("(2, 1)"), std::string::npos) << e.what();
  }
  test::Problem p = test::make_problem(problem_seed(), 8, 32);
  for (std::int64_t i = 0; i < 32; ++i) p.hessian(5, i) = p.hessian(i, 5) = 0.0;
  GptqOptions o;
  o.quant.group_size = 16;
  const HessianFactor f = solver->factorize(p.hessian, o);
  EXPECT_EQ(f.dead[5], 1);
  const MatrixF deq = solver->solve(p.weight, f, o).dequantize();
  for (std::int64_t r = 0; r < 8; ++r) EXPECT_EQ(deq(r, 5), 0.0f);
}

TEST(GptqSolver, RowsAreSolvedIndependentlyOfTheirNeighbours) {
  const test::Problem p = test::make_problem(problem_seed(), 128, 160);
  const auto solver = make_cpu_solver();
  GptqOptions o;
  o.quant.group_size = 32;
  o.act_order = true;
  const HessianFactor f = solver->factorize(p.hessian, o);
  const QuantizedWeight all = solver->solve(p.weight, f, o);
  const auto rows = [&](std::int64_t b, std::int64_t e) {
    return MatrixF(e - b, 160,
                   std::vector<float>(p.weight.data() + b * 160, p.weight.data() + e * 160));
  };
  const QuantizedWeight top = solver->solve(rows(0, 64), f, o),
                        bottom = solver->solve(rows(64, 128), f, o);
  const QuantizedWeight stacked = stack_rows({top, bottom});
  EXPECT_EQ(stacked.codes, all.codes);
  EXPECT_EQ(stacked.scales, all.scales);
  EXPECT_EQ(stacked.zeros, all.zeros);
  EXPECT_EQ(all.slice_rows(64, 128).codes, bottom.codes);
  // Uneven tiles (not multiples of the solver's internal panel) and a lone row.
  const QuantizedWeight uneven =
      stack_rows({solver->solve(rows(0, 37), f, o), solver->solve(rows(37, 101), f, o),
                  solver->solve(rows(101, 102), f, o), solver->solve(rows(102, 128), f, o)});
  EXPECT_EQ(uneven.codes, all.codes);
  EXPECT_EQ(uneven.scales, all.scales);
  EXPECT_EQ(uneven.zeros, all.zeros);
  // The Reference rule and static groups too.
  for (const bool static_groups : {false, true}) {
    GptqOptions o2 = o;
    o2.group_rule = GroupScaleRule::Reference;
    o2.static_groups = static_groups;
    const QuantizedWeight whole = solver->solve(p.weight, f, o2);
    const QuantizedWeight parts =
        stack_rows({solver->solve(rows(0, 70), f, o2), solver->solve(rows(70, 128), f, o2)});
    EXPECT_EQ(parts.codes, whole.codes);
    EXPECT_EQ(parts.scales, whole.scales);
  }
}

// Issue 3: the exact group-scale rule against the public reference code's choice. The reference
// rule depends on the block size: with block_size = group_size every group starts a batch and it
// equals the exact rule; with larger batches it does not.
TEST(GptqSolver, ReferenceGroupRuleDependsOnBlockSizeExactRuleDoesNot) {
  const auto solver = make_cpu_solver();
  for (int trial = 0; trial < 8; ++trial) {
    const std::uint64_t seed = problem_seed();
    SCOPED_TRACE(str("seed ", seed));
    const test::Problem p = test::make_problem(seed, 48, 96);
    GptqOptions o;
    o.quant.bits = 4;
    o.quant.group_size = 32;
    const HessianFactor f = solver->factorize(p.hessian, o);
    const QuantizedWeight exact = solver->solve(p.weight, f, o);
    o.group_rule = GroupScaleRule::Reference;
    o.block_size = 32;
    EXPECT_EQ(solver->solve(p.weight, f, o).codes, exact.codes);
    o.block_size = 128;
    EXPECT_NE(solver->solve(p.weight, f, o).codes, exact.codes);
  }
}

// The exact rule is lower on average, by little and not on every problem (it wins ~60 %): per
// problem the log ratio has a spread of ~0.12 around a mean of ~-0.014, so the averages are taken
// over 2000 problems (the mean log ratio is then ~5 standard errors below 0, the win count >10).
TEST(GptqSolver, ExactGroupRuleIsLowerThanReferenceOnAverage) {
  const auto solver = make_cpu_solver();
  const std::uint64_t base = problem_seed();
  SCOPED_TRACE(str("seeds ", base, " + 0..1999"));
  constexpr int kProblems = 2000;
  double exact_sum = 0.0, reference_sum = 0.0, log_ratio_sum = 0.0;
  int exact_wins = 0;
  for (int trial = 0; trial < kProblems; ++trial) {
    const test::Problem p = test::make_problem(base + static_cast<std::uint64_t>(trial), 48, 96);
    GptqOptions o;
    o.quant.bits = 4;
    o.quant.group_size = 32;
    const HessianFactor f = solver->factorize(p.hessian, o);
    const double exact =
        reconstruction_objective(p.weight, solver->solve(p.weight, f, o).dequantize(), p.hessian);
    o.group_rule = GroupScaleRule::Reference;
    const double reference =
        reconstruction_objective(p.weight, solver->solve(p.weight, f, o).dequantize(), p.hessian);
    exact_sum += exact;
    reference_sum += reference;
    log_ratio_sum += std::log(exact / reference);
    exact_wins += exact < reference;
  }
  const double geometric = std::exp(log_ratio_sum / kProblems);
  std::cout << "48x96 4-bit g32 block 128, " << kProblems
            << " problems: objective exact / reference rule: geometric mean " << geometric
            << ", ratio of sums " << exact_sum / reference_sum << ", exact lower on " << exact_wins
            << '\n';
  ::testing::Test::RecordProperty("exact_reference_geometric_mean", str(geometric));
  ::testing::Test::RecordProperty("exact_reference_ratio_of_sums", str(exact_sum / reference_sum));
  ::testing::Test::RecordProperty("exact_wins", exact_wins);
  EXPECT_LT(geometric, 1.0);
  EXPECT_GT(exact_wins, kProblems / 2);
}

}  // namespace
}  // namespace qshard
