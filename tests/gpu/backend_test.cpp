// The CUDA backend as the pipeline uses it: make_backend, Hessians, factorisation shared by q/k/v,
// row tiles, the decoder forward against the CPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "gptq_problems.hpp"
#include "gpu_test_support.hpp"
#include "qshard/backend/backend.hpp"
#include "qshard/backend/cpu_backend.hpp"
#include "qshard/backend/cuda_backend.hpp"
#include "qshard/model/decoder.hpp"
#include "qshard/model/synthetic_source.hpp"
#include "qshard/pipeline/backend_factory.hpp"

namespace qshard {
namespace {

TEST(CudaBackend, NoDeviceIsReportedNotThrown) {
  // Runs everywhere: the count never throws; without a GPU make_cuda_backend explains why.
  const int count = cuda_device_count();
  EXPECT_GE(count, 0);
  if (count == 0) {
    EXPECT_THROW(make_cuda_backend(0), Error);
    GTEST_SKIP() << "no CUDA device: " << test::no_gpu_reason();
  }
  EXPECT_THROW(make_cuda_backend(count), Error);
}

TEST(CudaBackend, TilesOfASharedFactorisationStackToTheWholeSolve) {
  QSHARD_REQUIRE_GPU();
  const auto backend = make_cuda_backend(0);
  EXPECT_EQ(backend->name(), "cuda");
  const test::Problem p = test::make_problem(17, 384, 256);
  GptqOptions o;
  o.quant.bits = 4;
  o.quant.group_size = 128;
  o.act_order = true;
  const HessianFactor f = backend->solver().factorize(p.hessian, o);
  const QuantizedWeight whole = backend->solver().solve(p.weight, f, o);
  std::vector<QuantizedWeight> tiles;
  for (std::int64_t b = 0; b < p.weight.rows(); b += 128) {
    MatrixF tile(128, p.weight.cols());
    for (std::int64_t r = 0; r < 128; ++r)
      for (std::int64_t c = 0; c < p.weight.cols(); ++c) tile(r, c) = p.weight(b + r, c);
    tiles.push_back(backend->solver().solve(tile, f, o));
  }
  EXPECT_TRUE(test::bitwise_equal(stack_rows(tiles), whole));
}

TEST(CudaBackend, ForwardMatchesCpu) {
  QSHARD_REQUIRE_GPU();
  const auto source = open_synthetic_model("tiny", 3);
  const ModelConfig& config = source->config();
  const LayerWeights weights = LayerWeights::load(*source, 0);
  const std::int64_t seq = 32, samples = 2;
  const RotaryTable rope(config, seq);
  MatrixF hidden(samples * seq, config.hidden_size);
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal;
  for (float& v : hidden.values()) v = normal(rng);
  const auto gpu = make_cuda_backend(0);
  const auto cpu = make_cpu_backend();
  std::vector<MatrixF> gpu_inputs, cpu_inputs;
  const MatrixF a = gpu->forward_layer(config, weights, rope, hidden, seq,
                                       [&](InputId, const MatrixF& x) { gpu_inputs.push_back(x); });
  const MatrixF b = cpu->forward_layer(config, weights, rope, hidden, seq,
                                       [&](InputId, const MatrixF& x) { cpu_inputs.push_back(x); });
  ASSERT_EQ(a.rows(), b.rows());
  ASSERT_EQ(gpu_inputs.size(), cpu_inputs.size());
  // The synthetic model is bf16, so the GPU forwards in bf16: compare within bf16 rounding.
  const auto relative = [](const MatrixF& x, const MatrixF& y) {
    double diff = 0.0, norm = 0.0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      diff += std::pow(static_cast<double>(x.data()[i]) - y.data()[i], 2);
      norm += std::pow(static_cast<double>(y.data()[i]), 2);
    }
    return std::sqrt(diff / norm);
  };
  std::printf("[forward] relative error of the layer output (bf16 on the GPU) = %.3g\n",
              relative(a, b));
  EXPECT_LT(relative(a, b), 1e-2);
  for (std::size_t k = 0; k < gpu_inputs.size(); ++k)
    EXPECT_LT(relative(gpu_inputs[k], cpu_inputs[k]), 2e-2) << "captured input " << k;
}

}  // namespace
}  // namespace qshard
