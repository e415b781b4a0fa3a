// The mixture-of-experts block against a double-precision reference: routing, each expert's
// captured inputs (the tokens routed to it, or every token), the Hessians built from them, the
// output, and a sample's independence from its batch.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>

#include "qshard/model/moe.hpp"
#include "qshard/quant/hessian.hpp"

namespace qshard {
namespace {

MatrixF random_matrix(std::mt19937_64& rng, std::int64_t rows, std::int64_t cols, double scale) {
  std::normal_distribution<double> normal;
  MatrixF m(rows, cols);
  for (float& v : m.values()) v = static_cast<float>(scale * normal(rng));
  return m;
}

// A sparse layer's config and MLP weights: 6 experts of 20, top-k, with or without a shared expert.
struct Block {
  ModelConfig config;
  LayerWeights weights;
};

Block make_block(std::uint64_t seed, std::int64_t k, bool normalise, bool shared) {
  std::mt19937_64 rng(seed);
  Block b;
  ModelConfig& c = b.config;
  c.model_type = shared ? "qwen2_moe" : "qwen3_moe";
  c.hidden_size = 24;
  c.moe.num_experts = 6;
  c.moe.experts_per_token = k;
  c.moe.expert_intermediate = 20;
  c.moe.norm_topk_prob = normalise;
  c.moe.shared_expert_intermediate = shared ? 28 : 0;
  b.weights.router = random_matrix(rng, 6, 24, 0.6);
  for (int e = 0; e < 6; ++e)
    b.weights.experts.push_back({random_matrix(rng, 20, 24, 0.3), random_matrix(rng, 20, 24, 0.3),
                                 random_matrix(rng, 24, 20, 0.3)});
  if (shared) {
    b.weights.shared_expert = {random_matrix(rng, 28, 24, 0.3), random_matrix(rng, 28, 24, 0.3),
                               random_matrix(rng, 24, 28, 0.3)};
    b.weights.shared_expert_gate = random_matrix(rng, 1, 24, 0.4);
  }
  return b;
}

std::vector<double> row_of(const MatrixF& m, std::int64_t r) {
  return {m.data() + r * m.cols(), m.data() + (r + 1) * m.cols()};
}

std::vector<double> matvec(const MatrixF& w, const std::vector<double>& x) {
  std::vector<double> y(static_cast<std::size_t>(w.rows()), 0.0);
  for (std::int64_t r = 0; r < w.rows(); ++r)
    for (std::int64_t c = 0; c < w.cols(); ++c) y[static_cast<std::size_t>(r)] += w(r, c) * x[c];
  return y;
}

std::vector<double> intermediate(const ExpertWeights& e, const std::vector<double>& x) {
  const std::vector<double> g = matvec(e.gate, x), u = matvec(e.up, x);
  std::vector<double> act(g.size());
  for (std::size_t i = 0; i < g.size(); ++i) act[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
  return act;
}

// One token's routing in double: (expert, weight) by decreasing probability, ties to the lower
// index.
std::vector<std::pair<int, double>> reference_route(const Block& b, const std::vector<double>& x) {
  const std::vector<double> logits = matvec(b.weights.router, x);
  const double top = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(logits.size());
  double total = 0.0;
  for (std::size_t e = 0; e < p.size(); ++e) total += (p[e] = std::exp(logits[e] - top));
  std::vector<int> order(p.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int c) { return p[a] > p[c]; });
  std::vector<std::pair<int, double>> chosen;
  double sum = 0.0;
  for (std::int64_t j = 0; j < b.config.moe.experts_per_token; ++j) {
    chosen.emplace_back(order[j], p[order[j]] / total);
    sum += p[order[j]] / total;
  }
  if (b.config.moe.norm_topk_prob)
    for (auto& [e, w] : chosen) w /= sum;
  return chosen;
}

using Captured = std::map<InputId, MatrixF>;

MatrixF run(const Block& b, const MatrixF& m, std::int64_t seq, Captured* captured,
            ExpertCapture mode = ExpertCapture::Routed) {
  return moe_forward(
      b.config, b.weights, m, seq,
      [captured](InputId input, const MatrixF& x) {
        if (captured == nullptr) return;
        ASSERT_EQ(captured->count(input), 0u) << "an input captured twice in one forward";
        (*captured)[input] = x;
      },
      std::nullopt, mode);
}

TEST(Moe, RoutingIsSoftmaxTopKWithTiesToTheLowerExpert) {
  MoeConfig moe;
  moe.num_experts = 5;
  moe.experts_per_token = 2;
  moe.norm_topk_prob = true;
  MatrixF logits(2, 5);
  logits.values() = {0.5f, 2.0f, 2.0f, -1.0f, 2.0f,  // a three-way tie for the top
                     3.0f, 1.0f, 0.0f, 0.0f,  2.5f};
  const Routing r = route(moe, logits);
  EXPECT_EQ(r.experts, (std::vector<std::int32_t>{1, 2, 0, 4}));
  EXPECT_FLOAT_EQ(r.weights[0], 0.5f);
  EXPECT_FLOAT_EQ(r.weights[1], 0.5f);
  const double e0 = std::exp(3.0), e4 = std::exp(2.5);
  EXPECT_NEAR(r.weights[2], e0 / (e0 + e4), 1e-7);
  moe.norm_topk_prob = false;  // the softmax probabilities themselves
  const double total = e0 + std::exp(1.0) + 2.0 + e4;
  EXPECT_NEAR(route(moe, logits).weights[3], e4 / total, 1e-7);
}

TEST(Moe, BlockMatchesDoublePrecisionAndEachExpertSeesItsRoutedTokens) {
  const std::uint64_t seed = std::random_device{}();
  SCOPED_TRACE(seed);
  for (const bool shared : {false, true}) {
    const Block b = make_block(seed, shared ? 2 : 3, !shared, shared);
    std::mt19937_64 rng(seed + 1);
    const std::int64_t seq = 12;
    const MatrixF m = random_matrix(rng, 2 * seq, 24, 1.0);
    Captured captured;
    const MatrixF out = run(b, m, seq, &captured);

    std::map<int, std::vector<std::int64_t>> routed;  // the double routing's tokens per expert
    double max_error = 0.0, scale = 0.0;
    for (std::int64_t t = 0; t < m.rows(); ++t) {
      const std::vector<double> x = row_of(m, t);
      std::vector<double> expected(24, 0.0);
      for (const auto& [e, w] : reference_route(b, x)) {
        routed[e].push_back(t);
        const std::vector<double> y =
            matvec(b.weights.experts[e].down, intermediate(b.weights.experts[e], x));
        for (std::size_t i = 0; i < 24; ++i) expected[i] += w * y[i];
      }
      if (shared) {
        const double g = 1 / (1 + std::exp(-matvec(b.weights.shared_expert_gate, x)[0]));
        const std::vector<double> y =
            matvec(b.weights.shared_expert.down, intermediate(b.weights.shared_expert, x));
        for (std::size_t i = 0; i < 24; ++i) expected[i] += g * y[i];
      }
      for (std::int64_t i = 0; i < 24; ++i) {
        max_error = std::max(max_error, std::abs(out(t, i) - expected[i]));
        scale = std::max(scale, std::abs(expected[i]));
      }
    }
    EXPECT_LT(max_error, 1e-5 * scale) << "shared " << shared;

    std::int64_t routed_tokens = 0;
    for (int e = 0; e < 6; ++e) {
      const std::vector<std::int64_t>& rows = routed[e];
      routed_tokens += static_cast<std::int64_t>(rows.size());
      if (rows.empty()) {
        EXPECT_EQ(captured.count({LinearInput::Mlp, e}), 0u);
        continue;
      }
      const MatrixF& x = captured.at({LinearInput::Mlp, e});
      const MatrixF& act = captured.at({LinearInput::MlpDown, e});
      ASSERT_EQ(x.rows(), static_cast<std::int64_t>(rows.size())) << "expert " << e;
      ASSERT_EQ(act.rows(), x.rows());
      ASSERT_EQ(act.cols(), 20);
      HessianAccumulator hessian(24);
      hessian.add_unit(x);
      MatrixD expected(24, 24);
      for (std::size_t i = 0; i < rows.size(); ++i) {
        const auto r = static_cast<std::int64_t>(i);
        EXPECT_EQ(row_of(x, r), row_of(m, rows[i])) << "expert " << e << " row " << i;
        const std::vector<double> a = intermediate(b.weights.experts[e], row_of(m, rows[i]));
        for (std::int64_t j = 0; j < 20; ++j)
          EXPECT_NEAR(act(r, j), a[j], 1e-5 * (1 + std::abs(a[j])));
        for (std::int64_t p = 0; p < 24; ++p)
          for (std::int64_t q = 0; q < 24; ++q)
            expected(p, q) +=
                2.0 * m(rows[i], p) * m(rows[i], q) / static_cast<double>(rows.size());
      }
      const MatrixD h = hessian.hessian();
      for (std::int64_t p = 0; p < 24; ++p)
        for (std::int64_t q = 0; q < 24; ++q)
          EXPECT_NEAR(h(p, q), expected(p, q), 1e-9 * (1 + std::abs(expected(p, q))));
      EXPECT_EQ(hessian.tokens(), static_cast<std::int64_t>(rows.size()));
    }
    EXPECT_EQ(routed_tokens, m.rows() * b.config.moe.experts_per_token);
    if (shared) {
      EXPECT_EQ(captured.at({LinearInput::Mlp, kSharedExpert}), m);
      EXPECT_EQ(captured.at({LinearInput::MlpDown, kSharedExpert}).cols(), 28);
    }
  }
}

TEST(Moe, AllTokensReachEveryExpertsHessiansAndTheOutputStillUsesTheRouting) {
  const Block b = make_block(11, 2, true, true);
  std::mt19937_64 rng(12);
  const MatrixF m = random_matrix(rng, 20, 24, 1.0);
  Captured routed, all;
  const MatrixF out = run(b, m, 10, &routed);
  EXPECT_EQ(run(b, m, 10, &all, ExpertCapture::All), out);
  // One gate/up input for every routed expert (the same tokens: one Hessian), each its own down.
  EXPECT_EQ(all.at({LinearInput::Mlp, kEveryExpert}), m);
  for (int e = 0; e < 6; ++e) {
    EXPECT_EQ(all.count({LinearInput::Mlp, e}), 0u) << "expert " << e;
    const MatrixF& act = all.at({LinearInput::MlpDown, e});
    ASSERT_EQ(act.rows(), m.rows());
    for (std::int64_t t = 0; t < m.rows(); ++t) {
      const std::vector<double> a = intermediate(b.weights.experts[e], row_of(m, t));
      for (std::int64_t j = 0; j < 20; ++j)
        EXPECT_NEAR(act(t, j), a[j], 1e-5 * (1 + std::abs(a[j])));
    }
  }
}

TEST(Moe, ASampleGivesTheSameBitsWhateverItsBatch) {
  const Block b = make_block(21, 2, false, true);
  std::mt19937_64 rng(22);
  const std::int64_t seq = 16;
  const MatrixF batch = random_matrix(rng, 3 * seq, 24, 1.0);
  const MatrixF together = run(b, batch, seq, nullptr);
  for (std::int64_t s = 0; s < 3; ++s) {
    MatrixF alone(seq, 24);
    std::copy(batch.data() + s * seq * 24, batch.data() + (s + 1) * seq * 24, alone.data());
    const MatrixF out = run(b, alone, seq, nullptr);
    EXPECT_TRUE(std::equal(out.data(), out.data() + out.size(), together.data() + s * seq * 24))
        << "sample " << s;
  }
}

}  // namespace
}  // namespace qshard
