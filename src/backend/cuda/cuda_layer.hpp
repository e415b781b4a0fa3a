#pragma once
// One LLaMA-family decoder layer on one GPU: weights resident in the activation dtype (the model's:
// fp32, bf16 or fp16), cuBLAS products with fp32 accumulation (no TF32), kernels for RMSNorm,
// rotary embedding, the causal softmax of grouped-query attention, SwiGLU and residuals. Linear
// inputs are handed to CUDA Hessian builders on the device (no host round trip).
//
// Each product covers one batch of whole samples (the unit the caller passes); the attention runs
// one sample at a time with one strided-batched product per query group, so the GEMM shapes depend
// only on the unit size, never on the rank count.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "cuda_solver.hpp"
#include "qshard/backend/backend.hpp"
#include "qshard/core/dtype.hpp"

namespace qshard::cuda {

// Calibration units in the memory of one GPU, in the activation dtype, [rows, cols] each.
class DeviceUnits final : public UnitStore {
 public:
  DeviceUnits(int device, DType activation, std::int64_t cols);
  ~DeviceUnits() override;
  DeviceUnits(const DeviceUnits&) = delete;
  DeviceUnits& operator=(const DeviceUnits&) = delete;

  // Uploads a host unit (fp32), converted to the activation dtype.
  void add_host(const MatrixF& unit);
  // Takes a unit already on the device (rows x cols in the activation dtype).
  void add_device(DeviceBuffer<std::byte> unit, std::int64_t rows);

  std::size_t size() const override { return units_.size(); }
  MatrixF unit(std::size_t index) const override;
  const void* data(std::size_t index) const { return units_.at(index).data(); }
  std::int64_t rows(std::size_t index) const override { return rows_.at(index); }
  std::int64_t cols() const { return cols_; }
  DType activation() const { return activation_; }
  int device() const { return device_; }

 private:
  int device_;
  DType activation_;
  std::int64_t cols_;
  std::vector<DeviceBuffer<std::byte>> units_;
  std::vector<std::int64_t> rows_;
};

class CudaLayer final : public ResidentLayer {
 public:
  // Uploads `weights` (converted to `activation`: F32, BF16 or F16) to `device`. `config`,
  // `weights`, `rope` and `solver` must outlive the layer. With a solver (of the same device) the
  // layer also keeps each module's fp32 weights on the device until it is installed quantized,
  // and quantize_tiles solves there.
  //
  // With `reuse_intermediates`, forward_unit and forward_all keep each unit's attention output,
  // post-attention hidden state and SwiGLU output (when they fit in device memory) and reuse them
  // in later forwards of the same unit until a module they depend on changes: the true-sequential
  // stages then compute the attention once instead of three times and the MLP's gate/up once
  // instead of twice, with the same bits.
  CudaLayer(int device, const ModelConfig& config, const LayerWeights& weights,
            const RotaryTable& rope, DType activation, const CudaSolver* solver = nullptr,
            bool reuse_intermediates = true);
  ~CudaLayer() override;
  CudaLayer(const CudaLayer&) = delete;
  CudaLayer& operator=(const CudaLayer&) = delete;

  void refresh(ModuleId module) override;
  // Replaces module `module` on the device only by the dequantized GPTQ result `q` (solved on
  // this device; g_idx as CudaSolver::g_idx gives it). The host weights are not changed.
  void set_quantized(ModuleId module, const DeviceQuantized& q,
                     const std::vector<std::int32_t>& g_idx);
  // Host in, host out (fp32): uploads the unit, forwards it, downloads the result.
  MatrixF forward(const MatrixF& hidden, std::int64_t seq_len, const LayerTargets& targets = {},
                  std::optional<LinearInput> stop_after = std::nullopt) override;
  // On DeviceUnits of this device and activation dtype (no host transfers).
  void forward_unit(const UnitStore& units, std::size_t index, std::int64_t seq_len,
                    const LayerTargets& targets,
                    std::optional<LinearInput> stop_after = std::nullopt) override;
  std::unique_ptr<UnitStore> forward_all(const UnitStore& units, std::int64_t seq_len) override;
  // GPTQ (or RTN), RTN and both objectives of this rank's tiles on the device (the module's fp32
  // weights and the Hessian are already there).
  std::unique_ptr<SolvedTiles> quantize_tiles(const TileJob& job) override;
  // Dequantizes a CudaQuantizedModule into the layer on the device; frees the module's fp32 copy.
  void install(ModuleId id, const QuantizedModule& module) override;

  // Device in, device out, in the activation dtype: hidden and out are [tokens, hidden_size] on
  // this device (out must not alias hidden), enqueued on stream(). Builders in `targets` must be
  // CudaHessianBuilders of this device (others get host copies). Returns false when it stopped
  // after `stop_after` (out is then not written).
  bool forward_device(const void* hidden, void* out, std::int64_t tokens, std::int64_t seq_len,
                      const LayerTargets& targets = {},
                      std::optional<LinearInput> stop_after = std::nullopt);

  DType activation() const;
  cudaStream_t stream() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The activation dtype the CUDA forward uses for a model stored in `dtype`: BF16 and F16 stay,
// everything else computes in F32.
DType activation_dtype_for(DType dtype);

}  // namespace qshard::cuda
