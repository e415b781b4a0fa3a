#pragma once
// GPTQ on one GPU: the same semantics as the CPU solver (backends/cpu/gptq_solver.cpp), with the
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
#include <vector>

#include "qshard/backend/cuda/device.hpp"
#include "qshard/quant/solver.hpp"

namespace qshard::cuda {

// A factorisation resident on the device.
struct DeviceFactor {
  std::int64_t columns = 0;
  std::vector<std::int32_t> perm;
  std::vector<std::uint8_t> dead;
  DeviceBuffer<float> hinv_upper;  // U, row-major n x n fp32, zero below the diagonal
  DeviceBuffer<std::int32_t> perm_device;
  DeviceBuffer<std::uint8_t> dead_device;
  double damp_percent_used = 0.0;
  int damp_steps = 0;
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
  // Device factorisations kept for solve() (keyed by the host factor they were returned in).
  std::size_t cached_factors = 4;
};

class CudaSolver final : public Solver {
 public:
  explicit CudaSolver(int device, CudaSolverOptions options = {});
  ~CudaSolver() override;
  CudaSolver(const CudaSolver&) = delete;
  CudaSolver& operator=(const CudaSolver&) = delete;

  // The interface: factorize() also keeps the device copy (see solve()).
  HessianFactor factorize(const MatrixD& hessian, const GptqOptions& options) const override;
  // Uses the cached device factor when `factor` is one this solver returned (same buffer, same
  // fingerprint of perm, dead, damping and sampled entries of U), else uploads it (fp32).
  QuantizedWeight solve(const MatrixF& weight, const HessianFactor& factor,
                        const GptqOptions& options) const override;
  // On the device (fp64 GEMM); H stays cached there (keyed by its host buffer and a fingerprint
  // of its contents) for the next tiles of the same module.
  double objective(const MatrixF& weight, const MatrixF& quantized,
                   const MatrixD& hessian) const override;
  bool rows_independent() const override { return true; }

  // Device-side steps (for benchmarks and the backend). `host_factor`, when given, receives the
  // host copy of U (double).
  std::shared_ptr<const DeviceFactor> factorize_device(const MatrixD& hessian,
                                                       const GptqOptions& options,
                                                       HessianFactor* host_factor = nullptr,
                                                       FactorizeTimings* timings = nullptr) const;
  // The same from an n x n Hessian already on this device (row-major double, left unchanged).
  std::shared_ptr<const DeviceFactor> factorize_device(const double* hessian, std::int64_t n,
                                                       const GptqOptions& options,
                                                       FactorizeTimings* timings = nullptr) const;
  std::shared_ptr<const DeviceFactor> upload_factor(const HessianFactor& factor) const;
  // GPTQ of `rows` x factor.columns fp32 weights already on this device (row-major, original
  // column order). Synchronises before returning.
  DeviceQuantized solve_resident(const float* weight, std::int64_t rows, const DeviceFactor& factor,
                                 const GptqOptions& options) const;
  QuantizedWeight download(const DeviceQuantized& result, const DeviceFactor& factor,
                           const GptqOptions& options) const;

  // The g_idx of results solved with `factor` (input column -> group).
  std::vector<std::int32_t> g_idx(const DeviceFactor& factor, const GptqOptions& options) const;

  int device() const;
  cudaStream_t stream() const;
  void clear_cache() const;

 private:
  // Factorises h (on the device; overwritten), the solver's mutex held.
  std::shared_ptr<const DeviceFactor> factorize_buffer(DeviceBuffer<double>& h, std::int64_t n,
                                                       const GptqOptions& options,
                                                       HessianFactor* host_factor,
                                                       FactorizeTimings* timings,
                                                       const Event& start) const;

  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace qshard::cuda
