#pragma once
// The Hessian builder on one GPU. Per calibration unit: X (uploaded, or already on the device) is
// rounded to bf16, X^T X is one cublasGemmEx (bf16 inputs, fp32 accumulation and output; it
// computes both triangles although only the lower one is used: cuBLAS has no bf16 syrk), and a
// kernel adds the lower triangle, rounded exactly as quant/hessian.hpp's to_fixed_limbs, to packed
// int64 limbs on the device. Integer sums are order-independent; the GEMM shape is fixed per unit,
// so the result is bitwise reproducible and independent of the rank count. all_reduce() uses
// NCCL on the device limbs when given an NcclCommunicator, else the host communicator on a host
// copy of the same packed limbs (every rank of a job runs the same backend).
//
// Non-finite inputs are reported at the next synchronising call (all_reduce, hessian, sum).
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>

#include "device.hpp"
#include "qshard/backend/backend.hpp"

namespace qshard::cuda {

enum class HessianPrecision : std::uint8_t {
  Bf16,  // X rounded to bf16, tensor-core GEMM (default)
  Fp32,  // X in fp32, fp32 GEMM (no TF32): slower, for checks
};

class CudaHessianBuilder final : public HessianBuilder {
 public:
  CudaHessianBuilder(int device, std::int64_t features,
                     HessianPrecision precision = HessianPrecision::Bf16);
  ~CudaHessianBuilder() override;
  CudaHessianBuilder(const CudaHessianBuilder&) = delete;
  CudaHessianBuilder& operator=(const CudaHessianBuilder&) = delete;

  std::int64_t features() const override;
  void add(const MatrixF& x) override;
  void all_reduce(Communicator& comm) override;
  // Through the host communicator: an MPI reduce to `owner` (the others' limbs are then left as
  // they were); with NCCL an all-reduce on the device.
  void reduce_to(Communicator& comm, int owner) override;
  // A DeviceHessian (backend/cuda/cuda_solver.hpp): H stays on this device.
  std::shared_ptr<const Hessian> reduced() const override;
  double add_seconds() const override;

  // X = [tokens, features] fp32 row-major already on this device; enqueued on stream() (the
  // caller keeps x valid until the stream reaches it).
  void add_device(const float* x, std::int64_t tokens);
  // X = [tokens, features] in `dtype` (F32, BF16, F16) on this device, produced on stream
  // `producer`: the builder's work waits for what `producer` has enqueued so far, and `producer`'s
  // later work waits until the builder has read x (so the producer may reuse the buffer).
  void add_device(const void* x, DType dtype, std::int64_t tokens, cudaStream_t producer);
  std::int64_t tokens() const override;
  // H = 2 X^T X / n (as hessian()) left on the device: row-major n x n doubles.
  DeviceBuffer<double> hessian_device() const;
  // The raw sum X^T X (no scaling).
  MatrixD sum() const;
  cudaStream_t stream() const;
  int device() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace qshard::cuda
