// Counter-based random fills (see random_kernels.hpp).
#include <cuda_runtime.h>

#include <algorithm>

#include "random_kernels.hpp"

namespace qshard::cuda::kernels {
namespace {

__device__ __forceinline__ std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

__global__ void fill_normal_kernel(float* out, std::size_t count, std::uint64_t seed, float scale) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::uint64_t bits = splitmix64(seed * 0x2545f4914f6cdd1dull + i);
    // Two 24-bit uniforms in (0, 1].
    const float u1 = (static_cast<float>(bits >> 40) + 1.0f) * (1.0f / 16777216.0f);
    const float u2 = static_cast<float>((bits >> 16) & 0xffffff) * (1.0f / 16777216.0f);
    out[i] = scale * sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
  }
}

__global__ void scale_column_kernel(float* x, std::int64_t rows, std::int64_t cols,
                                    std::int64_t column, float factor) {
  for (std::int64_t r = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; r < rows;
       r += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    x[r * cols + column] *= factor;
}

}  // namespace

cudaError_t fill_normal(float* out, std::size_t count, std::uint64_t seed, float scale,
                        cudaStream_t stream) {
  const auto blocks = static_cast<unsigned>(
      std::min<std::size_t>(std::max<std::size_t>((count + 255) / 256, 1), 1u << 16));
  fill_normal_kernel<<<blocks, 256, 0, stream>>>(out, count, seed, scale);
  return cudaGetLastError();
}

cudaError_t scale_column(float* x, std::int64_t rows, std::int64_t cols, std::int64_t column,
                         float factor, cudaStream_t stream) {
  const auto blocks = static_cast<unsigned>(std::min<std::int64_t>((rows + 255) / 256 + 1, 4096));
  scale_column_kernel<<<blocks, 256, 0, stream>>>(x, rows, cols, column, factor);
  return cudaGetLastError();
}

}  // namespace qshard::cuda::kernels
