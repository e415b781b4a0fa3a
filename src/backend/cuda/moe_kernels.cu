// Kernels of the CUDA mixture-of-experts MLP (C++17 device code; see moe_kernels.hpp). Fast math
// is off: expf and the divisions round as IEEE operations.
#include "element_types.cuh"
#include "moe_kernels.hpp"

namespace qshard::cuda::kernels {
namespace {

template <typename T>
__global__ void gather_rows_kernel(const T* x, const std::int32_t* rows, std::int64_t cols, T* out,
                                   std::size_t count) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t r = i / static_cast<std::size_t>(cols),
                      c = i % static_cast<std::size_t>(cols);
    out[i] = x[static_cast<std::size_t>(rows[r]) * static_cast<std::size_t>(cols) + c];
  }
}

template <typename T>
__global__ void scatter_add_rows_kernel(const T* y, const std::int32_t* rows, const float* weights,
                                        std::int64_t cols, float* acc, std::size_t count) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t r = i / static_cast<std::size_t>(cols),
                      c = i % static_cast<std::size_t>(cols);
    float& target = acc[static_cast<std::size_t>(rows[r]) * static_cast<std::size_t>(cols) + c];
    target = __fadd_rn(target, __fmul_rn(to_float(y[i]), weights[r]));  // no contraction: the CPU's
  }
}

template <typename T>
__global__ void add_gated_rows_kernel(const T* y, const float* gate, std::int64_t cols, float* acc,
                                      std::size_t count) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const float scale = 1.0f / (1.0f + expf(-gate[i / static_cast<std::size_t>(cols)]));
    acc[i] = __fadd_rn(acc[i], __fmul_rn(scale, to_float(y[i])));
  }
}

template <typename T>
__global__ void add_accumulator_kernel(const T* h, const float* acc, T* out, std::size_t count) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    out[i] = from_float<T>(to_float(h[i]) + acc[i]);
}

}  // namespace

cudaError_t gather_rows(const void* x, const std::int32_t* rows, std::int64_t count,
                        std::int64_t cols, void* out, DType dtype, cudaStream_t stream) {
  const auto elements = static_cast<std::size_t>(count * cols);
  if (elements == 0) return cudaSuccess;
  return dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    gather_rows_kernel<T><<<grid_for(elements), kThreads, 0, stream>>>(
        static_cast<const T*>(x), rows, cols, static_cast<T*>(out), elements);
    return cudaGetLastError();
  });
}

cudaError_t scatter_add_rows(const void* y, const std::int32_t* rows, const float* weights,
                             std::int64_t count, std::int64_t cols, float* acc, DType dtype,
                             cudaStream_t stream) {
  const auto elements = static_cast<std::size_t>(count * cols);
  if (elements == 0) return cudaSuccess;
  return dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    scatter_add_rows_kernel<T><<<grid_for(elements), kThreads, 0, stream>>>(
        static_cast<const T*>(y), rows, weights, cols, acc, elements);
    return cudaGetLastError();
  });
}

cudaError_t add_gated_rows(const void* y, const float* gate, std::int64_t rows, std::int64_t cols,
                           float* acc, DType dtype, cudaStream_t stream) {
  const auto elements = static_cast<std::size_t>(rows * cols);
  if (elements == 0) return cudaSuccess;
  return dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    add_gated_rows_kernel<T><<<grid_for(elements), kThreads, 0, stream>>>(
        static_cast<const T*>(y), gate, cols, acc, elements);
    return cudaGetLastError();
  });
}

cudaError_t add_accumulator(const void* h, const float* acc, void* out, std::size_t count,
                            DType dtype, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  return dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    add_accumulator_kernel<T><<<grid_for(count), kThreads, 0, stream>>>(
        static_cast<const T*>(h), acc, static_cast<T*>(out), count);
    return cudaGetLastError();
  });
}

}  // namespace qshard::cuda::kernels
