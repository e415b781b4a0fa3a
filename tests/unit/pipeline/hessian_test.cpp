// The exact fixed-point Hessian: agreement with a double brute force, and bitwise independence of
// the order and grouping in which units are added (the property the rank-count independence of
// qshard-quantize rests on).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "qshard/quant/hessian.hpp"

namespace qshard {
namespace {

MatrixF random_unit(std::mt19937_64& rng, std::int64_t tokens, std::int64_t features) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  MatrixF x(tokens, features);
  for (std::int64_t t = 0; t < tokens; ++t)
    for (std::int64_t f = 0; f < features; ++f) x(t, f) = normal(rng) * (f % 7 == 0 ? 20.0f : 1.0f);
  return x;
}

TEST(FixedLimbs, RoundTripIsExactOnTheGrid) {
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<double> u(-1e9, 1e9);
  for (int i = 0; i < 100000; ++i) {
    const double v = std::ldexp(std::round(std::ldexp(u(rng), 20)), -20);  // on the 2^-40 grid
    std::int64_t h = 0, l = 0;
    to_fixed_limbs(v, h, l);
    ASSERT_GE(l, 0);
    ASSERT_LT(l, std::int64_t{1} << 32);
    ASSERT_EQ(from_fixed_limbs(h, l), v) << v;
  }
  std::int64_t h = 0, l = 0;
  to_fixed_limbs(-0.3, h, l);
  EXPECT_NEAR(from_fixed_limbs(h, l), -0.3, 1e-12);
}

TEST(HessianAccumulator, MatchesDoubleBruteForce) {
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  const std::int64_t features = 24;
  HessianAccumulator acc(features);
  MatrixD brute(features, features);
  std::int64_t tokens = 0;
  for (int u = 0; u < 5; ++u) {
    const MatrixF x = random_unit(rng, 17 + u, features);
    acc.add_unit(x);
    tokens += x.rows();
    for (std::int64_t t = 0; t < x.rows(); ++t)
      for (std::int64_t i = 0; i < features; ++i)
        for (std::int64_t j = 0; j < features; ++j)
          brute(i, j) += double(x(t, i)) * double(x(t, j));
  }
  EXPECT_EQ(acc.tokens(), tokens);
  const MatrixD h = acc.hessian();
  for (std::int64_t i = 0; i < features; ++i)
    for (std::int64_t j = 0; j < features; ++j) {
      const double expected = 2.0 * brute(i, j) / double(tokens);
      ASSERT_NEAR(h(i, j), expected, 1e-9 * (1.0 + std::abs(expected))) << i << "," << j;
      ASSERT_EQ(h(i, j), h(j, i));
    }
}

TEST(HessianAccumulator, BitwiseIndependentOfOrderAndGrouping) {
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  const std::int64_t features = 16;
  std::vector<MatrixF> units;
  for (int u = 0; u < 12; ++u) units.push_back(random_unit(rng, 9, features));

  HessianAccumulator one(features);
  for (const MatrixF& x : units) one.add_unit(x);

  // Four "ranks" holding contiguous units, summed limb by limb (as the int64 all-reduce does),
  // with the units of each rank added in reverse order.
  std::vector<HessianAccumulator> ranks(4, HessianAccumulator(features));
  for (std::size_t u = units.size(); u-- > 0;) ranks[u * 4 / units.size()].add_unit(units[u]);
  HessianAccumulator reduced(features);
  for (const HessianAccumulator& r : ranks)
    for (std::size_t i = 0; i < r.reduction_buffer().size(); ++i)
      reduced.reduction_buffer()[i] += r.reduction_buffer()[i];

  const MatrixD a = one.hessian(), b = reduced.hessian();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a.data()[i], b.data()[i]) << i;
  EXPECT_EQ(one.tokens(), reduced.tokens());
}

TEST(HessianAccumulator, RefusesNonFiniteInput) {
  HessianAccumulator acc(3);
  MatrixF x(2, 3, 1.0f);
  x(1, 2) = std::nanf("");
  EXPECT_THROW(acc.add_unit(x), Error);
  HessianAccumulator empty(3);
  EXPECT_THROW((void)empty.hessian(), Error);
}

}  // namespace
}  // namespace qshard
