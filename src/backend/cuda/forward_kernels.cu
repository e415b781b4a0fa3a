// Kernels of the CUDA decoder forward (C++17 device code; see forward_kernels.hpp). Fast math is
// off: expf and the divisions round as IEEE operations.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "element_types.cuh"
#include "forward_kernels.hpp"

namespace qshard::cuda::kernels {
namespace {

// Sum of `value` over the block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
__device__ float block_sum(float value, float* shared) {
  for (int offset = 16; offset > 0; offset >>= 1)
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  __syncthreads();  // `shared` may still be read by a previous reduction
  if (lane == 0) shared[warp] = value;
  __syncthreads();
  float total = 0.0f;
  for (unsigned w = 0; w < warps; ++w) total += shared[w];  // same order in every thread
  return total;
}

__device__ float block_max(float value, float* shared) {
  for (int offset = 16; offset > 0; offset >>= 1)
    value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
  const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  __syncthreads();
  if (lane == 0) shared[warp] = value;
  __syncthreads();
  float best = shared[0];
  for (unsigned w = 1; w < warps; ++w) best = fmaxf(best, shared[w]);
  return best;
}

template <typename In, typename Out>
__global__ void convert_kernel(const In* in, Out* out, std::size_t count) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    out[i] = from_float<Out>(to_float(in[i]));
}

template <typename T>
__global__ void rms_norm_kernel(const T* x, const float* weight, float eps, T* y,
                                std::int64_t cols) {
  __shared__ float shared[32];
  const T* row = x + blockIdx.x * cols;
  T* out = y + blockIdx.x * cols;
  float sum = 0.0f;
  for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    const float v = to_float(row[c]);
    sum += v * v;
  }
  const float total = block_sum(sum, shared);
  const float inv = 1.0f / sqrtf(total / static_cast<float>(cols) + eps);
  for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x)
    out[c] = from_float<T>(weight[c] * (to_float(row[c]) * inv));
}

template <typename T>
__global__ void add_bias_kernel(T* y, const float* bias, std::size_t count, std::int64_t cols) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    y[i] = from_float<T>(to_float(y[i]) + bias[i % static_cast<std::size_t>(cols)]);
}

template <typename T>
__global__ void rotary_kernel(T* x, std::int64_t rows, std::int64_t heads, std::int64_t half,
                              std::int64_t row_stride, std::int64_t seq_len, const float* cos,
                              const float* sin) {
  const std::size_t count = static_cast<std::size_t>(rows * heads * half);
  for (std::size_t k = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; k < count;
       k += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::int64_t i = static_cast<std::int64_t>(k % static_cast<std::size_t>(half));
    const std::int64_t rest = static_cast<std::int64_t>(k / static_cast<std::size_t>(half));
    const std::int64_t h = rest % heads, r = rest / heads;
    const std::int64_t position = r % seq_len;
    T* p = x + r * row_stride + h * 2 * half;
    const float a = to_float(p[i]), b = to_float(p[i + half]);
    const float c = cos[position * half + i], s = sin[position * half + i];
    p[i] = from_float<T>(a * c - b * s);
    p[i + half] = from_float<T>(b * c + a * s);
  }
}

// One block per score row (matrix m, query t).
template <typename T>
__global__ void causal_softmax_kernel(const float* scores, T* probs, std::int64_t seq) {
  __shared__ float shared[32];
  const std::int64_t row_index = blockIdx.x;
  const std::int64_t t = row_index % seq;
  const float* row = scores + row_index * seq;
  T* out = probs + row_index * seq;
  const std::int64_t visible = t + 1;
  float best = -INFINITY;
  for (std::int64_t s = threadIdx.x; s < visible; s += blockDim.x) best = fmaxf(best, row[s]);
  best = block_max(best, shared);
  float sum = 0.0f;
  for (std::int64_t s = threadIdx.x; s < visible; s += blockDim.x) sum += expf(row[s] - best);
  const float inv = 1.0f / block_sum(sum, shared);
  for (std::int64_t s = threadIdx.x; s < seq; s += blockDim.x)
    out[s] = from_float<T>(s < visible ? expf(row[s] - best) * inv : 0.0f);
}

template <typename T>
__global__ void swiglu_kernel(T* gate, const T* up, std::size_t count) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const float g = to_float(gate[i]);
    gate[i] = from_float<T>(g / (1.0f + expf(-g)) * to_float(up[i]));
  }
}

template <typename T>
__global__ void add_kernel(const T* a, const T* b, T* out, std::size_t count) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    out[i] = from_float<T>(to_float(a[i]) + to_float(b[i]));
}

template <typename T>
__global__ void dequantize_kernel(const std::uint8_t* codes, const float* scales,
                                  const std::int32_t* zeros, const std::int32_t* g_idx,
                                  std::int64_t cols, std::int64_t groups, T* out,
                                  std::size_t count) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::int64_t r = static_cast<std::int64_t>(i / static_cast<std::size_t>(cols));
    const std::int64_t c = static_cast<std::int64_t>(i % static_cast<std::size_t>(cols));
    const std::int64_t g = g_idx[c];
    const double value = __dmul_rn(static_cast<double>(scales[r * groups + g]),
                                   static_cast<double>(codes[i] - zeros[r * groups + g]));
    out[i] = from_float<T>(static_cast<float>(value));
  }
}

unsigned norm_threads(std::int64_t cols) {
  if (cols >= 4096) return 1024;
  if (cols >= 1024) return 512;
  if (cols >= 256) return 256;
  return 64;
}

}  // namespace

std::size_t activation_size(DType dtype) { return dtype == DType::F32 ? 4 : 2; }

cudaError_t convert(const void* in, DType in_dtype, void* out, DType out_dtype, std::size_t count,
                    cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  return dispatch(in_dtype, [&](auto in_tag) {
    using In = decltype(in_tag);
    return dispatch(out_dtype, [&](auto out_tag) {
      using Out = decltype(out_tag);
      convert_kernel<In, Out><<<grid_for(count), kThreads, 0, stream>>>(
          static_cast<const In*>(in), static_cast<Out*>(out), count);
      return cudaGetLastError();
    });
  });
}

cudaError_t rms_norm(const void* x, const float* weight, float eps, void* y, std::int64_t rows,
                     std::int64_t cols, DType dtype, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  if (rows > 0x7fffffff) return cudaErrorInvalidValue;
  return dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    rms_norm_kernel<T><<<static_cast<unsigned>(rows), norm_threads(cols), 0, stream>>>(
        static_cast<const T*>(x), weight, eps, static_cast<T*>(y), cols);
    return cudaGetLastError();
  });
}

cudaError_t add_bias(void* y, const float* bias, std::int64_t rows, std::int64_t cols, DType dtype,
                     cudaStream_t stream) {
  const auto count = static_cast<std::size_t>(rows * cols);
  if (count == 0) return cudaSuccess;
  return dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    add_bias_kernel<T>
        <<<grid_for(count), kThreads, 0, stream>>>(static_cast<T*>(y), bias, count, cols);
    return cudaGetLastError();
  });
}

cudaError_t rotary(void* x, std::int64_t rows, std::int64_t heads, std::int64_t head_dim,
                   std::int64_t row_stride, std::int64_t seq_len, const float* cos,
                   const float* sin, DType dtype, cudaStream_t stream) {
  const std::int64_t half = head_dim / 2;
  const auto count = static_cast<std::size_t>(rows * heads * half);
  if (count == 0) return cudaSuccess;
  return dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    rotary_kernel<T><<<grid_for(count), kThreads, 0, stream>>>(static_cast<T*>(x), rows, heads,
                                                               half, row_stride, seq_len, cos, sin);
    return cudaGetLastError();
  });
}

cudaError_t causal_softmax(const float* scores, void* probs, std::int64_t matrices,
                           std::int64_t seq, DType dtype, cudaStream_t stream) {
  const std::int64_t rows = matrices * seq;
  if (rows <= 0) return cudaSuccess;
  if (rows > 0x7fffffff) return cudaErrorInvalidValue;
  return dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    causal_softmax_kernel<T><<<static_cast<unsigned>(rows), seq >= 1024 ? 256u : 64u, 0, stream>>>(
        scores, static_cast<T*>(probs), seq);
    return cudaGetLastError();
  });
}

cudaError_t swiglu(void* gate, const void* up, std::size_t count, DType dtype,
                   cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  return dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    swiglu_kernel<T><<<grid_for(count), kThreads, 0, stream>>>(static_cast<T*>(gate),
                                                               static_cast<const T*>(up), count);
    return cudaGetLastError();
  });
}

cudaError_t add(const void* a, const void* b, void* out, std::size_t count, DType dtype,
                cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  return dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    add_kernel<T><<<grid_for(count), kThreads, 0, stream>>>(
        static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(out), count);
    return cudaGetLastError();
  });
}

cudaError_t dequantize(const std::uint8_t* codes, const float* scales, const std::int32_t* zeros,
                       const std::int32_t* g_idx, std::int64_t rows, std::int64_t cols,
                       std::int64_t groups, void* out, DType dtype, cudaStream_t stream) {
  const auto count = static_cast<std::size_t>(rows * cols);
  if (count == 0) return cudaSuccess;
  return dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    dequantize_kernel<T><<<grid_for(count), kThreads, 0, stream>>>(
        codes, scales, zeros, g_idx, cols, groups, static_cast<T*>(out), count);
    return cudaGetLastError();
  });
}

}  // namespace qshard::cuda::kernels
