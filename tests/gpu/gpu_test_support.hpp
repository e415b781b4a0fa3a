#pragma once
// Shared helpers of the GPU tests: skipping without a device, a host communicator that simulates
// identical ranks, comparisons.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>

#include "qshard/backend/cuda_backend.hpp"
#include "qshard/comm/communicator.hpp"
#include "qshard/core/matrix.hpp"
#include "qshard/quant/quantized_weight.hpp"

namespace qshard::test {

// Why no GPU test can run here ("" when a device is visible).
inline std::string no_gpu_reason() {
  if (cuda_device_count() > 0) return "";
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  (void)cudaGetLastError();
  return status == cudaSuccess ? std::string("cudaGetDeviceCount reports 0 devices")
                               : std::string(cudaGetErrorString(status));
}

#define QSHARD_REQUIRE_GPU()                                           \
  do {                                                                 \
    const std::string reason = ::qshard::test::no_gpu_reason();        \
    if (!reason.empty()) GTEST_SKIP() << "no CUDA device: " << reason; \
  } while (0)

// `ranks` identical ranks in one process: sums multiply by the rank count, gathers repeat the
// local part. With ranks == 1 it is the trivial single-process communicator.
class RepeatCommunicator final : public Communicator {
 public:
  explicit RepeatCommunicator(int ranks = 1) : ranks_(ranks) {}
  int rank() const override { return 0; }
  int size() const override { return ranks_; }
  void all_reduce_sum(std::span<std::int64_t> values) override {
    for (std::int64_t& v : values) v *= ranks_;
  }
  void all_reduce_sum(std::span<double> values) override {
    for (double& v : values) v *= ranks_;
  }
  void all_reduce_max(std::span<double>) override {}
  std::vector<std::byte> all_gather(std::span<const std::byte> local) override {
    std::vector<std::byte> out;
    for (int r = 0; r < ranks_; ++r) out.insert(out.end(), local.begin(), local.end());
    return out;
  }
  void broadcast(std::span<std::byte>, int) override {}
  void barrier() override {}
  [[noreturn]] void abort(int exit_code) override { std::exit(exit_code); }
  bool any(bool failed) override { return failed; }

 private:
  int ranks_;
};

inline double code_agreement(const QuantizedWeight& a, const QuantizedWeight& b) {
  std::size_t same = 0;
  for (std::size_t i = 0; i < a.codes.size(); ++i) same += a.codes.data()[i] == b.codes.data()[i];
  return static_cast<double>(same) / static_cast<double>(std::max<std::size_t>(a.codes.size(), 1));
}

inline bool bitwise_equal(const QuantizedWeight& a, const QuantizedWeight& b) {
  return a.codes == b.codes && a.zeros == b.zeros && a.g_idx == b.g_idx &&
         a.scales.size() == b.scales.size() &&
         std::memcmp(a.scales.data(), b.scales.data(), a.scales.size() * sizeof(float)) == 0;
}

// Hidden states [rows, cols] of standard normal values (seeded).
inline MatrixF random_hidden(std::uint64_t seed, std::int64_t rows, std::int64_t cols) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  MatrixF m(rows, cols);
  for (float& v : m.values()) v = normal(rng);
  return m;
}

}  // namespace qshard::test
