// The CUDA Hessian builder against the CPU accumulator: limb rounding, bf16 and fp32 GEMM paths,
// exact order independence, the host and NCCL all-reduce paths, the NCCL communicator.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>

#include "cuda_hessian.hpp"
#include "device.hpp"
#include "gpu_test_support.hpp"
#include "hessian_kernels.hpp"
#include "nccl_communicator.hpp"
#include "qshard/core/dtype.hpp"
#include "qshard/quant/hessian.hpp"

namespace qshard {
namespace {

// Activations with a few large channels; optionally rounded to bf16 so both sides see the same X.
MatrixF random_unit(std::uint64_t seed, std::int64_t tokens, std::int64_t features, bool bf16) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  MatrixF x(tokens, features);
  for (float& v : x.values()) v = normal(rng);
  for (std::int64_t t = 0; t < tokens; ++t) {
    x(t, 1) *= 30.0f;
    x(t, features / 2) *= 12.0f;
  }
  if (bf16)
    for (float& v : x.values()) v = bf16_to_f32(f32_to_bf16(v));
  return x;
}

// max |a - b| / max |b|
double relative_difference(const MatrixD& a, const MatrixD& b) {
  double scale = 0.0, diff = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    scale = std::max(scale, std::abs(b.data()[i]));
    diff = std::max(diff, std::abs(a.data()[i] - b.data()[i]));
  }
  return diff / scale;
}

TEST(CudaHessian, LimbsMatchTheCpuRoundingBitwise) {
  QSHARD_REQUIRE_GPU();
  std::vector<double> values = {0.0,
                                1.0,
                                -1.0,
                                0.5,
                                -0.5,
                                1e-12,
                                -1e-12,
                                3.0e9,
                                -3.0e9,
                                std::ldexp(1.0, -41),
                                std::ldexp(3.0, -42),
                                -std::ldexp(1.0, -41),
                                std::ldexp(1.0, 32) - std::ldexp(1.0, -40),
                                123456.789};
  std::mt19937_64 rng(42);
  std::normal_distribution<double> normal;
  for (int i = 0; i < 100000; ++i) values.push_back(normal(rng) * std::pow(10.0, i % 12 - 4));
  cuda::Stream stream;
  cuda::DeviceBuffer<double> in(values.size());
  cuda::DeviceBuffer<std::int64_t> high(values.size()), low(values.size());
  in.upload(values.data(), values.size(), stream.get());
  QSHARD_CUDA_CHECK(
      cuda::kernels::to_limbs(in.data(), values.size(), high.data(), low.data(), stream.get()));
  std::vector<std::int64_t> h(values.size()), l(values.size());
  high.download(h.data(), h.size(), stream.get());
  low.download(l.data(), l.size(), stream.get());
  stream.synchronize();
  for (std::size_t i = 0; i < values.size(); ++i) {
    std::int64_t eh = 0, el = 0;
    to_fixed_limbs(values[i], eh, el);
    ASSERT_EQ(h[i], eh) << values[i];
    ASSERT_EQ(l[i], el) << values[i];
  }
}

TEST(CudaHessian, MatchesCpuAccumulator) {
  QSHARD_REQUIRE_GPU();
  for (const std::int64_t features : {64, 200, 512}) {
    for (const bool fp32 : {false, true}) {
      SCOPED_TRACE(str(features, " features, ", fp32 ? "fp32" : "bf16"));
      HessianAccumulator cpu(features);
      cuda::CudaHessianBuilder gpu(
          0, features, fp32 ? cuda::HessianPrecision::Fp32 : cuda::HessianPrecision::Bf16);
      for (int unit = 0; unit < 4; ++unit) {
        const MatrixF x = random_unit(static_cast<std::uint64_t>(unit + 10 * features),
                                      100 + 37 * unit, features, /*bf16=*/!fp32);
        cpu.add_unit(x);
        gpu.add(x);
      }
      EXPECT_EQ(gpu.tokens(), cpu.tokens());
      const MatrixD expected = cpu.hessian();
      const MatrixD actual = gpu.hessian();
      const double rel = relative_difference(actual, expected);
      std::printf("[hessian] f=%lld %s: max |H_gpu - H_cpu| / max |H_cpu| = %.3g\n",
                  static_cast<long long>(features), fp32 ? "fp32" : "bf16", rel);
      EXPECT_LT(rel, 1e-5);  // same inputs; fp32 accumulation only
      for (std::int64_t i = 0; i < features; ++i)
        for (std::int64_t j = 0; j < i; ++j) ASSERT_EQ(actual(i, j), actual(j, i));
    }
  }
  // General fp32 inputs through bf16: the rounding of X, within 1e-3 of the CPU.
  const std::int64_t features = 256;
  HessianAccumulator cpu(features);
  cuda::CudaHessianBuilder gpu(0, features);
  for (int unit = 0; unit < 3; ++unit) {
    const MatrixF x = random_unit(static_cast<std::uint64_t>(unit), 512, features, false);
    cpu.add_unit(x);
    gpu.add(x);
  }
  const double rel = relative_difference(gpu.hessian(), cpu.hessian());
  std::printf("[hessian] fp32 inputs via bf16: relative difference %.3g\n", rel);
  EXPECT_LT(rel, 1e-3);
}

TEST(CudaHessian, ExactlyOrderIndependent) {
  QSHARD_REQUIRE_GPU();
  const std::int64_t features = 192;
  std::vector<MatrixF> units;
  for (int u = 0; u < 5; ++u)
    units.push_back(random_unit(static_cast<std::uint64_t>(u), 64 + 16 * u, features, false));
  cuda::CudaHessianBuilder forward(0, features), backward(0, features);
  for (const MatrixF& x : units) forward.add(x);
  for (auto it = units.rbegin(); it != units.rend(); ++it) backward.add(*it);
  EXPECT_EQ(forward.hessian(), backward.hessian());
  // Two identical ranks double everything: H is unchanged, the sum doubles exactly.
  test::RepeatCommunicator two(2);
  cuda::CudaHessianBuilder doubled(0, features);
  for (const MatrixF& x : units) doubled.add(x);
  doubled.all_reduce(two);
  EXPECT_EQ(doubled.tokens(), 2 * forward.tokens());
  const MatrixD s1 = forward.sum(), s2 = doubled.sum();
  for (std::size_t i = 0; i < s1.size(); ++i) ASSERT_EQ(s2.data()[i], 2.0 * s1.data()[i]);
  EXPECT_EQ(doubled.hessian(), forward.hessian());
}

TEST(CudaHessian, ReportsNonFiniteUnits) {
  QSHARD_REQUIRE_GPU();
  cuda::CudaHessianBuilder gpu(0, 16);
  MatrixF x(4, 16, 1.0f);
  x(2, 5) = NAN;
  gpu.add(x);
  EXPECT_THROW(gpu.hessian(), Error);
  cuda::CudaHessianBuilder empty(0, 16);
  EXPECT_THROW(empty.hessian(), Error);
}

TEST(NcclCommunicator, OneRankCollectives) {
  QSHARD_REQUIRE_GPU();
  test::RepeatCommunicator host(1);
  cuda::NcclCommunicator nccl(host, 0);
  EXPECT_EQ(nccl.size(), 1);
  EXPECT_EQ(nccl.rank(), 0);
  cuda::Stream stream;
  std::vector<std::int64_t> values = {1, -2, 3, std::int64_t{1} << 50};
  cuda::DeviceBuffer<std::int64_t> buffer(values.size());
  buffer.upload(values.data(), values.size(), stream.get());
  nccl.all_reduce_sum_device(buffer.data(), values.size(), stream.get());
  std::vector<std::int64_t> back(values.size());
  buffer.download(back.data(), back.size(), stream.get());
  stream.synchronize();
  nccl.check_async();
  EXPECT_EQ(back, values);
  cuda::DeviceBuffer<std::uint8_t> gathered(values.size() * 8);
  nccl.all_gather_device(buffer.data(), gathered.data(), values.size() * 8, stream.get());
  std::vector<std::int64_t> again(values.size());
  QSHARD_CUDA_CHECK(cudaMemcpyAsync(again.data(), gathered.data(), values.size() * 8,
                                    cudaMemcpyDeviceToHost, stream.get()));
  stream.synchronize();
  EXPECT_EQ(again, values);

  // The Hessian builder's NCCL path with one rank leaves H bitwise unchanged.
  cuda::CudaHessianBuilder gpu(0, 96);
  gpu.add(random_unit(1, 50, 96, false));
  const MatrixD before = gpu.hessian();
  gpu.all_reduce(nccl);
  EXPECT_EQ(gpu.hessian(), before);
  EXPECT_EQ(gpu.tokens(), 50);
}

TEST(NcclCommunicator, RefusesTwoRanksOnOneGpu) {
  QSHARD_REQUIRE_GPU();
  test::RepeatCommunicator two_on_this_gpu(2);  // both "ranks" report this host and GPU
  EXPECT_THROW(
      {
        try {
          cuda::NcclCommunicator nccl(two_on_this_gpu, 0);
        } catch (const CollectiveError& e) {
          std::printf("[nccl] expected refusal: %s\n", e.what());
          throw;
        }
      },
      CollectiveError);
}

}  // namespace
}  // namespace qshard
