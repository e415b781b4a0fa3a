// The CPU backend's tile path: quantize_tiles, the host exchange and install, against the solver
// called directly on whole modules.
#include <gtest/gtest.h>

#include "gptq_problems.hpp"
#include "qshard/backend/backend.hpp"
#include "qshard/backend/cpu_backend.hpp"
#include "qshard/backend/host_tiles.hpp"
#include "qshard/comm/mpi.hpp"
#include "qshard/model/synthetic_source.hpp"
#include "tile_ranks.hpp"

namespace qshard {
namespace {

bool same(const QuantizedWeight& a, const QuantizedWeight& b) {
  return a.bits == b.bits && a.group_size == b.group_size && a.codes == b.codes &&
         a.scales == b.scales && a.zeros == b.zeros && a.g_idx == b.g_idx;
}

struct Fixture {
  std::unique_ptr<WeightSource> source = open_synthetic_model("tiny", 7);
  const ModelConfig& config = source->config();
  LayerWeights weights = LayerWeights::load(*source, 0);
  RotaryTable rope{config, 16};
  std::unique_ptr<Backend> backend = make_cpu_backend();
  // A correlated Hessian over the module's inputs.
  MatrixD hessian = test::make_problem(3, 8, config.hidden_size).hessian;
  GptqOptions options;
  Fixture() {
    options.quant.bits = 3;
    options.quant.group_size = 32;
    options.act_order = true;
  }
};

TEST(HostTiles, OneRankModuleIsTheSolverOnTheWholeModule) {
  Fixture f;
  const auto h = make_host_hessian(f.hessian);
  const auto factor = f.backend->solver().factorize(*h, f.options);
  for (const bool gptq : {true, false}) {
    const auto layer = f.backend->load_layer(f.config, f.weights, f.rope);
    const MatrixF& w = f.weights[Linear::Q];
    const TileDeal deal = test::make_deal(w.rows(), 24, 1);
    TileJob job;
    job.module = Linear::Q;
    job.deal = &deal;
    job.factor = gptq ? factor.get() : nullptr;
    job.hessian = h.get();
    job.options = &f.options;
    job.threads = 2;
    SelfCommunicator one;
    const auto module = f.backend->gather_tiles(layer->quantize_tiles(job), deal, one);
    const QuantizedWeight expected =
        gptq ? f.backend->solver().solve(w, *factor, f.options) : quantize_rtn(w, f.options.quant);
    EXPECT_TRUE(same(module->to_host(), expected)) << "gptq " << gptq;
    // Objectives: the tiles' sum equals the whole module's objective (to rounding).
    const double whole = reconstruction_objective(w, expected.dequantize(), f.hessian);
    EXPECT_NEAR(module->objective_gptq, whole, 1e-9 * whole);
    const double rtn =
        reconstruction_objective(w, quantize_rtn(w, f.options.quant).dequantize(), f.hessian);
    EXPECT_NEAR(module->objective_rtn, rtn, 1e-9 * rtn);
    if (gptq) {
      EXPECT_LT(module->objective_gptq, module->objective_rtn);
    }

    // install: the layer forwards with the dequantized module, the caller's weights unchanged.
    const MatrixF before = f.weights[Linear::Q];
    layer->install(Linear::Q, *module);
    EXPECT_EQ(f.weights[Linear::Q], before);
    LayerWeights dequantized = f.weights;
    dequantized[Linear::Q] = expected.dequantize();
    MatrixF hidden(16, f.config.hidden_size, 0.5f);
    for (std::int64_t i = 0; i < hidden.cols(); ++i) hidden(i % 16, i) = -1.0f;
    EXPECT_EQ(layer->forward(hidden, 16),
              f.backend->load_layer(f.config, dequantized, f.rope)->forward(hidden, 16));
  }
}

TEST(HostTiles, TwoRanksGiveTheOneRankModuleBitwise) {
  Fixture f;
  const auto h = make_host_hessian(f.hessian);
  const auto factor = f.backend->solver().factorize(*h, f.options);
  const MatrixF& w = f.weights[Linear::Gate];
  const TileDeal one_rank = test::make_deal(w.rows(), 16, 1);
  const TileDeal two_ranks = test::make_deal(w.rows(), 16, 2);
  ASSERT_GE(two_ranks.size(), 3u);
  const auto solve = [&](const TileDeal& deal, int rank) {
    TileJob job;
    job.module = Linear::Gate;
    job.deal = &deal;
    job.rank = rank;
    job.factor = factor.get();
    job.hessian = h.get();
    job.options = &f.options;
    return f.backend->load_layer(f.config, f.weights, f.rope)->quantize_tiles(job);
  };
  const std::unique_ptr<SolvedTiles> all = solve(one_rank, 0);
  const QuantizedWeight expected = all->to_host();
  double expected_gptq = 0.0, expected_rtn = 0.0;
  for (std::size_t t = 0; t < all->objective_gptq.size(); ++t) {
    expected_gptq += all->objective_gptq[t];
    expected_rtn += all->objective_rtn[t];
  }
  test::ScriptedPeerCommunicator comm(test::peer_messages(*solve(two_ranks, 1)));
  const auto module = f.backend->gather_tiles(solve(two_ranks, 0), two_ranks, comm);
  EXPECT_EQ(comm.pending(), 0u);
  EXPECT_TRUE(same(module->to_host(), expected));
  EXPECT_EQ(module->objective_gptq, expected_gptq);
  EXPECT_EQ(module->objective_rtn, expected_rtn);
}

}  // namespace
}  // namespace qshard
