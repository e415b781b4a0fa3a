// The quantizer against its definition, written out independently in double precision.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "qshard/core/dtype.hpp"
#include "qshard/core/error.hpp"
#include "qshard/quant/quantized_weight.hpp"
#include "qshard/quant/quantizer.hpp"
#include "qshard/quant/solver.hpp"

namespace qshard {
namespace {

TEST(Quantizer, MinMaxMatchesDefinition) {
  std::mt19937 rng(std::random_device{}());
  std::normal_distribution<float> normal(0.0f, 0.1f);
  for (const int bits : {2, 3, 4, 8})
    for (const bool sym : {false, true})
      for (int trial = 0; trial < 50; ++trial) {
        std::vector<float> x(37);
        for (float& v : x) v = normal(rng) + (trial % 3 == 0 ? 0.2f : 0.0f);  // some all-positive
        QuantConfig c;
        c.bits = bits;
        c.sym = sym;
        const double maxq = (1 << bits) - 1;
        double lo = std::min(0.0, double(*std::min_element(x.begin(), x.end())));
        double hi = std::max(0.0, double(*std::max_element(x.begin(), x.end())));
        if (sym) {
          hi = std::max(-lo, hi);
          if (lo < 0) lo = -hi;
        }
        const float scale = round_to_f16(static_cast<float>((hi - lo) / maxq));
        const int zero = sym ? (1 << bits) / 2 : static_cast<int>(std::nearbyint(-lo / scale));
        const GroupParams p = find_params(std::span<const float>(x), c);
        ASSERT_EQ(p.scale, scale);
        ASSERT_EQ(p.zero, zero);
        for (const float v : x) {
          const double q = std::clamp(std::nearbyint(v / double(scale)) + zero, 0.0, maxq);
          ASSERT_EQ(quantize_value(v, p, c.maxq()), static_cast<int>(q));
        }
      }
}

TEST(Quantizer, ZeroGroupAndRoundHalfToEven) {
  QuantConfig c;
  c.bits = 4;
  const std::vector<float> zeros(8, 0.0f);
  const GroupParams p = find_params(std::span<const float>(zeros), c);
  EXPECT_EQ(p.scale, round_to_f16(2.0f / 15.0f));
  EXPECT_EQ(quantize_value(0.0, p, 15), p.zero);
  const GroupParams unit{1.0f, 0};
  EXPECT_EQ(quantize_value(2.5, unit, 15), 2);
  EXPECT_EQ(quantize_value(3.5, unit, 15), 4);
  EXPECT_EQ(quantize_value(99.0, unit, 15), 15);
  EXPECT_EQ(quantize_value(-3.0, unit, 15), 0);
}

TEST(Quantizer, MseSearchNeverWorseThanMinMax) {
  std::mt19937 rng(std::random_device{}());
  std::student_t_distribution<float> heavy(2.0f);
  for (int trial = 0; trial < 40; ++trial) {
    std::vector<float> x(64);
    for (float& v : x) v = heavy(rng) * 0.01f;
    QuantConfig c;
    c.bits = 3;
    const auto error = [&](const GroupParams& p) {
      double e = 0.0;
      for (const float v : x)
        e += std::pow(std::abs(dequantize_value(quantize_value(v, p, c.maxq()), p) - v), 2.4);
      return e;
    };
    const double plain = error(find_params(std::span<const float>(x), c));
    c.mse = true;
    EXPECT_LE(error(find_params(std::span<const float>(x), c)), plain * (1 + 1e-12));
  }
}

// The mse search written out from its definition (the reference tools' Quantizer.find_params with
// mse=True): shrink the range by p = 1 - i/grid for i < maxshrink*grid, keep the first best.
TEST(Quantizer, MseSearchMatchesBruteForceDefinition) {
  std::mt19937 rng(std::random_device{}());
  std::student_t_distribution<double> heavy(3.0);
  for (const int bits : {2, 3, 4, 8})
    for (const bool sym : {false, true})
      for (int trial = 0; trial < 10; ++trial) {
        std::vector<double> x(48);
        for (double& v : x) v = heavy(rng) * 0.02 + (trial % 4 == 0 ? 0.05 : 0.0);
        QuantConfig c;
        c.bits = bits;
        c.sym = sym;
        c.mse = true;
        const double maxq = (1 << bits) - 1;
        double lo = std::min(0.0, *std::min_element(x.begin(), x.end()));
        double hi = std::max(0.0, *std::max_element(x.begin(), x.end()));
        if (sym) {
          hi = std::max(-lo, hi);
          if (lo < 0) lo = -hi;
        }
        double best = INFINITY;
        float best_scale = 0.0f;
        int best_zero = 0;
        for (int i = 0; i < static_cast<int>(0.8 * 100); ++i) {
          const double shrink = 1.0 - i / 100.0;
          const float scale = round_to_f16(static_cast<float>((shrink * hi - shrink * lo) / maxq));
          const int zero =
              sym ? (1 << bits) / 2 : static_cast<int>(std::nearbyint(-shrink * lo / scale));
          double err = 0.0;
          for (const double v : x) {
            const double q = std::clamp(std::nearbyint(v / scale) + zero, 0.0, maxq);
            err += std::pow(std::abs(scale * (q - zero) - v), 2.4);
          }
          if (err < best) {
            best = err;
            best_scale = scale;
            best_zero = zero;
          }
        }
        const GroupParams p = find_params(std::span<const double>(x), c);
        ASSERT_EQ(p.scale, best_scale) << bits << " bits" << (sym ? " sym" : "");
        ASSERT_EQ(p.zero, best_zero) << bits << " bits" << (sym ? " sym" : "");
      }
}

TEST(Rtn, PartialLastGroupAndGidx) {
  std::mt19937 rng(std::random_device{}());
  std::normal_distribution<float> normal;
  MatrixF w(4, 172);
  for (float& v : w.values()) v = normal(rng);
  QuantConfig c;
  c.group_size = 64;
  const QuantizedWeight q = quantize_rtn(w, c);
  EXPECT_EQ(q.groups(), 3);
  EXPECT_EQ(q.g_idx[171], 2);
  EXPECT_EQ(q.g_idx[64], 1);
  const MatrixF d = q.dequantize();
  for (std::int64_t r = 0; r < 4; ++r)
    for (std::int64_t col = 0; col < 172; ++col) {
      const std::int64_t g = col / 64;
      EXPECT_LE(std::abs(d(r, col) - w(r, col)), 0.51 * q.scales(r, g));
    }
}

}  // namespace
}  // namespace qshard

namespace qshard {
namespace {

// QuantizedWeight::allocate and the group helpers: one rule for "-1 means one group per row".
TEST(QuantizedWeightShape, AllocateAndGroupRules) {
  EXPECT_EQ(group_width(576, 128), 128);
  EXPECT_EQ(group_width(576, -1), 576);
  EXPECT_EQ(group_count(576, 128), 5);  // 4.5 groups: the last one partial
  EXPECT_EQ(group_count(576, -1), 1);
  const std::vector<std::int32_t> g = sequential_g_idx(5, 2);
  EXPECT_EQ(g, (std::vector<std::int32_t>{0, 0, 1, 1, 2}));
  EXPECT_EQ(sequential_g_idx(3, -1), (std::vector<std::int32_t>{0, 0, 0}));

  const QuantizedWeight w = QuantizedWeight::allocate(3, 2, 4, 5, group_count(5, 2));
  EXPECT_EQ(w.bits, 3);
  EXPECT_EQ(w.group_size, 2);
  EXPECT_EQ(w.rows(), 4);
  EXPECT_EQ(w.cols(), 5);
  EXPECT_EQ(w.groups(), 3);
  EXPECT_EQ(w.zeros.rows(), 4);
  EXPECT_EQ(w.zeros.cols(), 3);
  EXPECT_EQ(w.g_idx, g);
  const std::vector<std::int32_t> permuted{2, 0, 1, 0, 1};
  EXPECT_EQ(QuantizedWeight::allocate(3, 2, 4, 5, 3, permuted).g_idx, permuted);
  EXPECT_THROW((void)QuantizedWeight::allocate(3, 2, 4, 5, 3, {0, 1}), Error);
}

}  // namespace
}  // namespace qshard
