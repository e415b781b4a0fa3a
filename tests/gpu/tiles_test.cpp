// The CUDA backend's production path against the CPU and against the solver called directly:
// device RTN, quantize_tiles (GPTQ, RTN, per-tile objectives from a device Hessian), the exchange
// of tiles and install, the way quantize_layer drives them.
#include <gtest/gtest.h>

#include "cuda_layer.hpp"
#include "cuda_solver.hpp"
#include "cuda_tiles.hpp"
#include "gptq_problems.hpp"
#include "gpu_test_support.hpp"
#include "qshard/backend/cpu_backend.hpp"
#include "qshard/backend/cuda_backend.hpp"
#include "qshard/backend/host_tiles.hpp"
#include "qshard/comm/mpi.hpp"
#include "qshard/model/synthetic_source.hpp"
#include "qshard/pipeline/layer_quantizer.hpp"
#include "tile_ranks.hpp"

namespace qshard {
namespace {

using cuda::CudaSolver;
using cuda::DeviceBuffer;
using cuda::DeviceHessian;

std::shared_ptr<const Hessian> on_device(const MatrixD& h) {
  DeviceBuffer<double> values(h.size());
  values.upload(h.data(), h.size(), nullptr);
  QSHARD_CUDA_CHECK(cudaDeviceSynchronize());
  return std::make_shared<DeviceHessian>(0, h.rows(), std::move(values));
}

TEST(CudaTiles, DeviceRtnIsHostRtnBitwise) {
  QSHARD_REQUIRE_GPU();
  const CudaSolver solver(0);
  const test::Problem p = test::make_problem(11, 150, 200);
  DeviceBuffer<float> w(p.weight.size());
  w.upload(p.weight.data(), p.weight.size(), solver.stream());
  int cases = 0;
  for (const int bits : {2, 3, 4, 8})
    for (const std::int64_t group : {std::int64_t{32}, std::int64_t{-1}, std::int64_t{96}})
      for (const bool sym : {false, true})
        for (const bool mse : {false, true}) {
          QuantConfig c;
          c.bits = bits;
          c.group_size = group;
          c.sym = sym;
          c.mse = mse;
          cuda::DeviceRows rows;
          rows.bits = bits;
          rows.group_size = group;
          rows.q = solver.rtn_resident(w.data(), p.weight.rows(), p.weight.cols(), c);
          const QuantizedWeight expected = quantize_rtn(p.weight, c);
          rows.g_idx = expected.g_idx;
          EXPECT_TRUE(test::bitwise_equal(rows.to_host(), expected))
              << bits << " bits, group " << group << " sym " << sym << " mse " << mse;
          ++cases;
        }
  EXPECT_EQ(cases, 48);
}

TEST(CudaTiles, RowObjectivesMatchHostAndDoNotDependOnOtherRows) {
  QSHARD_REQUIRE_GPU();
  const CudaSolver solver(0);
  const test::Problem p = test::make_problem(12, 300, 256);
  GptqOptions o;
  o.quant.group_size = 64;
  const auto h = on_device(p.hessian);
  const auto& dh = static_cast<const DeviceHessian&>(*h);
  DeviceBuffer<float> w(p.weight.size());
  w.upload(p.weight.data(), p.weight.size(), solver.stream());
  const cuda::DeviceQuantized q = solver.rtn_resident(w.data(), 300, 256, o.quant);
  const QuantizedWeight host = quantize_rtn(p.weight, o.quant);
  DeviceBuffer<std::int32_t> g_idx(host.g_idx.size());
  g_idx.upload(host.g_idx.data(), host.g_idx.size(), solver.stream());
  const std::vector<double> rows = solver.row_objectives(w.data(), q, g_idx.data(), dh.data());
  ASSERT_EQ(rows.size(), 300u);
  double total = 0.0;
  for (const double v : rows) total += v;
  const double expected = reconstruction_objective(p.weight, host.dequantize(), p.hessian);
  EXPECT_NEAR(total, expected, 1e-10 * expected);
  // Rows 100..299 alone: the same values bitwise.
  const cuda::DeviceQuantized tail = solver.rtn_resident(w.data() + 100 * 256, 200, 256, o.quant);
  const std::vector<double> tail_rows =
      solver.row_objectives(w.data() + 100 * 256, tail, g_idx.data(), dh.data());
  for (std::size_t r = 0; r < 200; ++r) ASSERT_EQ(tail_rows[r], rows[r + 100]) << r;
}

struct LayerFixture {
  std::unique_ptr<WeightSource> source = open_synthetic_model("tiny", 9);
  const ModelConfig& config = source->config();
  LayerWeights weights = LayerWeights::load(*source, 0);
  RotaryTable rope{config, 16};
  std::unique_ptr<Backend> gpu = make_cuda_backend(0);
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  MatrixD hessian = test::make_problem(4, 8, config.hidden_size).hessian;
  GptqOptions options;
  LayerFixture() {
    options.quant.bits = 4;
    options.quant.group_size = 32;
    options.act_order = true;
  }
  TileJob job(Linear l, const TileDeal& deal, int rank, const Factorization* factor,
              const Hessian& h) const {
    TileJob j;
    j.module = l;
    j.deal = &deal;
    j.rank = rank;
    j.factor = factor;
    j.hessian = &h;
    j.options = &options;
    return j;
  }
};

TEST(CudaTiles, QuantizeTilesIsTheSolverWithHostObjectives) {
  QSHARD_REQUIRE_GPU();
  LayerFixture f;
  const auto& solver = f.gpu->solver();
  const auto h = on_device(f.hessian);
  const auto factor = solver.factorize(*h, f.options);  // a DeviceFactor of the device H
  const MatrixF& w = f.weights[Linear::Up];
  const TileDeal deal = test::make_deal(w.rows(), 40, 1);
  SelfCommunicator one;
  for (const bool gptq : {true, false}) {
    const auto layer = f.gpu->load_layer(f.config, f.weights, f.rope);
    const auto module = f.gpu->gather_tiles(
        layer->quantize_tiles(f.job(Linear::Up, deal, 0, gptq ? factor.get() : nullptr, *h)), deal,
        one);
    const QuantizedWeight expected =
        gptq ? solver.solve(w, solver.factorize(f.hessian, f.options), f.options)
             : quantize_rtn(w, f.options.quant);
    EXPECT_TRUE(test::bitwise_equal(module->to_host(), expected)) << "gptq " << gptq;
    const double objective = reconstruction_objective(w, expected.dequantize(), f.hessian);
    const double rtn =
        reconstruction_objective(w, quantize_rtn(w, f.options.quant).dequantize(), f.hessian);
    EXPECT_NEAR(module->objective_gptq, objective, 1e-9 * objective);
    EXPECT_NEAR(module->objective_rtn, rtn, 1e-9 * rtn);
    // The CPU backend's objectives of its own solve are close (fp64 vs fp32 solve).
    if (gptq) {
      const auto cpu_factor = f.cpu->solver().factorize(*make_host_hessian(f.hessian), f.options);
      const auto cpu_layer = f.cpu->load_layer(f.config, f.weights, f.rope);
      const auto cpu_module =
          f.cpu->gather_tiles(cpu_layer->quantize_tiles(f.job(Linear::Up, deal, 0, cpu_factor.get(),
                                                              *make_host_hessian(f.hessian))),
                              deal, one);
      EXPECT_NEAR(module->objective_gptq, cpu_module->objective_gptq,
                  2e-3 * cpu_module->objective_gptq);
      EXPECT_NEAR(module->objective_rtn, cpu_module->objective_rtn,
                  1e-9 * cpu_module->objective_rtn);
      EXPECT_GT(test::code_agreement(module->to_host(), cpu_module->to_host()), 0.99);
    }

    // install: the layer forwards as a layer loaded from the host-dequantized weights.
    layer->install(Linear::Up, *module);
    LayerWeights dequantized = f.weights;
    dequantized[Linear::Up] = expected.dequantize();
    MatrixF hidden(16, f.config.hidden_size);
    for (std::size_t i = 0; i < hidden.size(); ++i)
      hidden.data()[i] = static_cast<float>((i * 7919) % 23) / 11.0f - 1.0f;
    EXPECT_EQ(layer->forward(hidden, 16),
              f.gpu->load_layer(f.config, dequantized, f.rope)->forward(hidden, 16));
    EXPECT_THROW(layer->quantize_tiles(f.job(Linear::Up, deal, 0, nullptr, *h)), Error);
  }
}

TEST(CudaTiles, TwoRanksThroughTheHostGiveTheOneRankModuleBitwise) {
  QSHARD_REQUIRE_GPU();
  LayerFixture f;
  const auto h = on_device(f.hessian);
  const auto factor = f.gpu->solver().factorize(*h, f.options);
  const MatrixF& w = f.weights[Linear::Gate];
  const TileDeal one_rank = test::make_deal(w.rows(), 16, 1);
  const TileDeal two_ranks = test::make_deal(w.rows(), 16, 2);
  const auto solve = [&](const TileDeal& deal, int rank) {
    return f.gpu->load_layer(f.config, f.weights, f.rope)
        ->quantize_tiles(f.job(Linear::Gate, deal, rank, factor.get(), *h));
  };
  SelfCommunicator one;
  const auto expected = f.gpu->gather_tiles(solve(one_rank, 0), one_rank, one);
  test::ScriptedPeerCommunicator comm(test::peer_messages(*solve(two_ranks, 1)));
  const auto module = f.gpu->gather_tiles(solve(two_ranks, 0), two_ranks, comm);
  EXPECT_EQ(comm.pending(), 0u);
  EXPECT_TRUE(test::bitwise_equal(module->to_host(), expected->to_host()));
  EXPECT_EQ(module->objective_gptq, expected->objective_gptq);
  EXPECT_EQ(module->objective_rtn, expected->objective_rtn);
}

}  // namespace
}  // namespace qshard

namespace qshard {
namespace {

// quantize_layer on a CUDA layer that reuses each unit's intermediates between the true-sequential
// stages, against one that recomputes them: the same records and next-layer inputs, bitwise.
TEST(CudaTiles, ReusedIntermediatesGiveTheSameLayerBitwise) {
  QSHARD_REQUIRE_GPU();
  const auto source = open_synthetic_model("tiny", 5);
  const ModelConfig& config = source->config();
  const LayerWeights weights = LayerWeights::load(*source, 1);
  const std::int64_t seq = 32;
  const RotaryTable rope(config, seq);
  const auto backend = make_cuda_backend(0);
  const auto& solver = dynamic_cast<const CudaSolver&>(backend->solver());
  std::vector<MatrixF> units;
  for (int u = 0; u < 3; ++u) {
    MatrixF x(2 * seq, config.hidden_size);
    for (std::size_t i = 0; i < x.size(); ++i)
      x.data()[i] = static_cast<float>(((i + 97 * u) * 2654435761u) % 1000) / 500.0f - 1.0f;
    units.push_back(std::move(x));
  }
  const auto store = backend->store_units(config, units);
  JobOptions o;
  o.seq_len = seq;
  o.tile_rows = 48;
  o.gptq.quant.group_size = 32;
  o.gptq.act_order = true;
  SelfCommunicator one;
  const LayerContext context{config, o, *backend, one, rope, true};
  const auto run = [&](bool reuse, std::unique_ptr<UnitStore>& next) {
    cuda::CudaLayer layer(0, config, weights, rope, cuda::activation_dtype_for(config.torch_dtype),
                          &solver, reuse);
    LayerTimings timings;
    return quantize_layer(context, weights, layer, *store, timings, &next);
  };
  std::unique_ptr<UnitStore> next_reused, next_fresh;
  const std::vector<ModuleRecord> reused = run(true, next_reused);
  const std::vector<ModuleRecord> fresh = run(false, next_fresh);
  for (std::size_t m = 0; m < reused.size(); ++m) {
    EXPECT_TRUE(test::bitwise_equal(reused[m].weight, fresh[m].weight)) << m;
    EXPECT_EQ(reused[m].objective_gptq, fresh[m].objective_gptq) << m;
    EXPECT_EQ(reused[m].objective_rtn, fresh[m].objective_rtn) << m;
  }
  for (std::size_t u = 0; u < units.size(); ++u)
    EXPECT_EQ(next_reused->unit(u), next_fresh->unit(u)) << u;
}

}  // namespace
}  // namespace qshard
