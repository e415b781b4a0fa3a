#pragma once
// Kernels of the CUDA decoder forward (cuda_layer.cpp) behind a C++17 interface of plain pointers.
// Activations are stored in the model's dtype (F32, BF16 or F16: `dtype` below); every kernel
// computes in fp32 and rounds once when it stores. Every launcher enqueues on `stream` and returns
// the launch status.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "qshard/core/dtype.hpp"

namespace qshard::cuda::kernels {

// out[i] = in[i] converted between F32, BF16 and F16 (round to nearest even).
cudaError_t convert(const void* in, DType in_dtype, void* out, DType out_dtype, std::size_t count,
                    cudaStream_t stream);

// y[r] = weight * x[r] / sqrt(mean(x[r]^2) + eps) for each of `rows` rows of `cols` values (y may
// be x: in place).
cudaError_t rms_norm(const void* x, const float* weight, float eps, void* y, std::int64_t rows,
                     std::int64_t cols, DType dtype, cudaStream_t stream);

// y[r, c] += bias[c].
cudaError_t add_bias(void* y, const float* bias, std::int64_t rows, std::int64_t cols, DType dtype,
                     cudaStream_t stream);

// Hugging Face rotate-half rotary embedding, in place, on `heads` heads of `head_dim` values per
// row (row stride `row_stride` elements); row r is at position r % seq_len; cos/sin are
// [positions, head_dim / 2].
cudaError_t rotary(void* x, std::int64_t rows, std::int64_t heads, std::int64_t head_dim,
                   std::int64_t row_stride, std::int64_t seq_len, const float* cos,
                   const float* sin, DType dtype, cudaStream_t stream);

// Causal softmax of `matrices` score matrices [seq, seq] (row t = query t, column s = key s, fp32,
// already scaled): p[t, s] = exp(x[t, s] - max) / sum over s <= t, 0 for s > t.
cudaError_t causal_softmax(const float* scores, void* probs, std::int64_t matrices,
                           std::int64_t seq, DType dtype, cudaStream_t stream);

// gate[i] = silu(gate[i]) * up[i].
cudaError_t swiglu(void* gate, const void* up, std::size_t count, DType dtype, cudaStream_t stream);

// out[i] = a[i] + b[i] (out may alias a).
cudaError_t add(const void* a, const void* b, void* out, std::size_t count, DType dtype,
                cudaStream_t stream);

// out [rows, cols] = scales[r, g] * (codes[r, c] - zeros[r, g]) with g = g_idx[c], evaluated in
// double and rounded once (as QuantizedWeight::dequantize, then to `dtype`). codes is [*, cols],
// scales and zeros [*, groups] (row-major; extra rows ignored).
cudaError_t dequantize(const std::uint8_t* codes, const float* scales, const std::int32_t* zeros,
                       const std::int32_t* g_idx, std::int64_t rows, std::int64_t cols,
                       std::int64_t groups, void* out, DType dtype, cudaStream_t stream);

// Element size of an activation dtype (F32 4, BF16/F16 2).
std::size_t activation_size(DType dtype);

}  // namespace qshard::cuda::kernels
