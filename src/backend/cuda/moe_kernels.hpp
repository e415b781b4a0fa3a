#pragma once
// Kernels of the CUDA mixture-of-experts MLP (cuda_layer.cpp): an expert's tokens gathered into
// consecutive rows, its output added back to them scaled by their routing weights, the gated
// shared expert, and the residual. Sums run in an fp32 accumulator [tokens, hidden] that the
// experts update in expert order on one stream (within an expert every row is a different token),
// so every token's sum has the CPU's order and two runs are bitwise equal. Every launcher enqueues
// on `stream` and returns the launch status.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "qshard/core/dtype.hpp"

namespace qshard::cuda::kernels {

// out[i, :] = x[rows[i], :] for i < count (x and out [*, cols] in `dtype`).
cudaError_t gather_rows(const void* x, const std::int32_t* rows, std::int64_t count,
                        std::int64_t cols, void* out, DType dtype, cudaStream_t stream);

// acc[rows[i], :] += weights[i] * y[i, :] for i < count (y in `dtype`; rows distinct).
cudaError_t scatter_add_rows(const void* y, const std::int32_t* rows, const float* weights,
                             std::int64_t count, std::int64_t cols, float* acc, DType dtype,
                             cudaStream_t stream);

// acc[r, :] += sigmoid(gate[r]) * y[r, :] for r < rows (Qwen2-MoE's shared expert; gate fp32).
cudaError_t add_gated_rows(const void* y, const float* gate, std::int64_t rows, std::int64_t cols,
                           float* acc, DType dtype, cudaStream_t stream);

// out[i] = h[i] + acc[i], rounded once to `dtype` (out may alias h).
cudaError_t add_accumulator(const void* h, const float* acc, void* out, std::size_t count,
                            DType dtype, cudaStream_t stream);

}  // namespace qshard::cuda::kernels
