#pragma once
// GPTQ on one GPU: the same semantics as the CPU solver (backend/cpu/gptq_solver.cpp), with the
// factorisation in fp64 (cuSOLVER) and the solve in fp32.
//
// Factorisation: with J the reversal permutation and P the act_order permutation,
// J P^T H P J + lambda I = L L^T (one potrf), then U = J L^-1 J (one trtri, J applied by the
// gather/scatter kernels around them): 2n^3/3 flops, half the reference route (potrf, potri =
// trtri + lauum, potrf: 4n^3/3).
//
// Solve: lazy batches of block_size columns, cut into inner batches of at most 128 columns. One
// fused kernel per inner batch quantizes its columns in order (a warp per row, the batch's 128x128
// block of U in shared memory, every row's 128 weights in registers, group parameters computed in
// the kernel when a group starts), then one cuBLAS SGEMM (strided-batched over fixed panels of
// rows) applies the batch error to the later columns. Every row's arithmetic depends on that row
// alone (fixed panel shape, per-warp rows), so a row's result is bitwise the same whichever rows
// are solved with it, and two runs are bitwise equal.
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "device.hpp"
#include "qshard/quant/solver.hpp"

namespace qshard::cuda {

// A reduced Hessian in the memory of one GPU (row-major n x n doubles).
class DeviceHessian final : public Hessian {
 public:
  DeviceHessian(int device, std::int64_t n, DeviceBuffer<double> values);
  ~DeviceHessian() override;
  DeviceHessian(const DeviceHessian&) = delete;
  DeviceHessian& operator=(const DeviceHessian&) = delete;
  std::int64_t features() const override { return n_; }
  MatrixD to_host() const override;
  const double* data() const { return values_.data(); }
  int device() const { return device_; }

 private:
  int device_;
  std::int64_t n_;
  DeviceBuffer<double> values_;
};

// A factorisation resident on the device (perm, dead and damping also on the host).
struct DeviceFactor final : Factorization {
  int device = 0;
  DeviceBuffer<float> hinv_upper;  // U, row-major n x n fp32, zero below the diagonal
  DeviceBuffer<std::int32_t> perm_device;
  DeviceBuffer<std::uint8_t> dead_device;
};

// The quantized result on the device (rows_padded >= rows; the padding rows are scratch).
struct DeviceQuantized {
  std::int64_t rows = 0, rows_padded = 0, columns = 0, groups = 0;
  DeviceBuffer<std::uint8_t> codes;  // [rows_padded, columns], original column order
  DeviceBuffer<float> scales;        // [rows_padded, groups]
  DeviceBuffer<std::int32_t> zeros;  // [rows_padded, groups]
};

// Where factorize_device spent its time (CUDA events on the solver's stream).
struct FactorizeTimings {
  double upload_ms = 0.0;    // H to the device and its finiteness check
  double factor_ms = 0.0;    // gather, potrf, trtri, scatter (all damping attempts)
  double download_ms = 0.0;  // U (double) to the host, when asked for
};

struct CudaSolverOptions {
  // Rows per GEMM panel: the trailing update runs on fixed [panel_rows, *] shapes (rows padded),
  // which keeps a row's result independent of the others. A multiple of 16.
  std::int64_t panel_rows = 128;
  // factorize_many: how many factorisations run at once, each on its own stream and host thread
  // (a sparse layer's experts: hundreds of small ones that one at a time leave the GPU idle).
  int concurrent_factorizations = 4;
};

class CudaSolver final : public Solver {
 public:
  explicit CudaSolver(int device, CudaSolverOptions options = {});
  ~CudaSolver() override;
  CudaSolver(const CudaSolver&) = delete;
  CudaSolver& operator=(const CudaSolver&) = delete;

  using Solver::factorize;
  using Solver::objective;
  // A DeviceFactor; a DeviceHessian of this device is used where it is, others are uploaded.
  std::shared_ptr<const Factorization> factorize(const Hessian& hessian,
                                                 const GptqOptions& options) const override;
  HessianFactor factorize_host(const MatrixD& hessian, const GptqOptions& options) const override;
  // Up to options.concurrent_factorizations at once, on helper solvers of this device (their own
  // streams and handles); each result bitwise the factorize() of its Hessian.
  std::vector<std::shared_ptr<const Factorization>> factorize_many(
      const std::vector<const Hessian*>& hessians, const GptqOptions& options) const override;
  // Against a DeviceFactor of this device, or a host factorisation (uploaded for the call).
  QuantizedWeight solve(const MatrixF& weight, const Factorization& factor,
                        const GptqOptions& options) const override;
  // On the device (fp64 GEMM), from a DeviceHessian without a transfer.
  double objective(const MatrixF& weight, const MatrixF& quantized,
                   const Hessian& hessian) const override;
  bool rows_independent() const override { return true; }

  // Device-side steps (for the backend and benchmarks). `host_factor`, when given, receives the
  // host copy of U (double).
  std::shared_ptr<const DeviceFactor> factorize_device(const MatrixD& hessian,
                                                       const GptqOptions& options,
                                                       HessianFactor* host_factor = nullptr,
                                                       FactorizeTimings* timings = nullptr) const;
  // The same from an n x n Hessian already on this device (row-major double, left unchanged).
  std::shared_ptr<const DeviceFactor> factorize_device(const double* hessian, std::int64_t n,
                                                       const GptqOptions& options,
                                                       FactorizeTimings* timings = nullptr) const;
  // `factor` as a DeviceFactor of this device: itself, or a host factorisation uploaded.
  std::shared_ptr<const DeviceFactor> device_factor(const Factorization& factor) const;
  std::shared_ptr<const DeviceFactor> upload_factor(const HessianFactor& factor) const;
  // GPTQ of `rows` x factor.columns fp32 weights already on this device (row-major, original
  // column order). Synchronises before returning.
  DeviceQuantized solve_resident(const float* weight, std::int64_t rows, const DeviceFactor& factor,
                                 const GptqOptions& options) const;
  // Round-to-nearest of the same (groups of consecutive columns; quantize_rtn's bits).
  DeviceQuantized rtn_resident(const float* weight, std::int64_t rows, std::int64_t columns,
                               const QuantConfig& config) const;
  // tr of each row: d_r H d_r^T with d = W - dequantized(q), g_idx on the device, H an n x n
  // Hessian on this device. Fixed GEMM shapes: each row's value is bitwise independent of the
  // other rows. Synchronises.
  std::vector<double> row_objectives(const float* weight, const DeviceQuantized& q,
                                     const std::int32_t* g_idx, const double* hessian) const;
  QuantizedWeight download(const DeviceQuantized& result, const DeviceFactor& factor,
                           const GptqOptions& options) const;

  // The g_idx of results solved with `factor` (input column -> group).
  std::vector<std::int32_t> g_idx(const Factorization& factor, const GptqOptions& options) const;

  int device() const;
  cudaStream_t stream() const;
  const CudaSolverOptions& solver_options() const;

 private:
  // Factorises h (on the device; overwritten), the solver's mutex held.
  std::shared_ptr<const DeviceFactor> factorize_buffer(DeviceBuffer<double>& h, std::int64_t n,
                                                       const GptqOptions& options,
                                                       HessianFactor* host_factor,
                                                       FactorizeTimings* timings,
                                                       const Event& start) const;

  struct State;
  std::unique_ptr<State> state_;
  mutable std::mutex helpers_mutex_;
  mutable std::vector<std::unique_ptr<CudaSolver>> helpers_;  // factorize_many's, made on first use
};

}  // namespace qshard::cuda
