// Kernels of the CUDA Hessian builder (C++17 device code). The limb arithmetic repeats
// src/quant/hessian.cpp operation by operation with explicitly rounded double operations (no
// contraction), so the same double gives the same limbs as on the CPU.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "hessian_kernels.hpp"

namespace qshard::cuda::kernels {
namespace {

constexpr int kFractionBits = 40;          // HessianAccumulator::kFractionBits
constexpr double kLowBase = 4294967296.0;  // 2^32
constexpr double kScale = static_cast<double>(1ull << kFractionBits);  // 2^40
constexpr double kHighScale = static_cast<double>(1ull << (kFractionBits - 32));

__device__ __forceinline__ void fixed_limbs(double value, long long& high, long long& low) {
  const double high_part = floor(__dmul_rn(value, kHighScale));
  const double rest = __dsub_rn(__dmul_rn(value, kScale), __dmul_rn(high_part, kLowBase));
  long long h = static_cast<long long>(high_part);
  long long l = llround(rest);
  if (l == static_cast<long long>(kLowBase)) {
    ++h;
    l = 0;
  }
  high = h;
  low = l;
}

__device__ __forceinline__ double from_limbs(long long high, long long low) {
  const long long carry = low >> 32;
  const long long h = high + carry;
  const long long l = low - carry * static_cast<long long>(kLowBase);
  return __ddiv_rn(__dadd_rn(__dmul_rn(static_cast<double>(h), kLowBase), static_cast<double>(l)),
                   kScale);
}

__device__ __forceinline__ std::size_t packed_index(std::int64_t i, std::int64_t j,
                                                    std::int64_t f) {
  return static_cast<std::size_t>(j * f - j * (j - 1) / 2 + (i - j));
}

__global__ void to_bf16_kernel(const float* in, std::size_t count, __nv_bfloat16* out) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    out[i] = __float2bfloat16_rn(in[i]);
}

// blockIdx.y is the column j; threads run down the rows i >= j (coalesced in c and the limbs).
__global__ void accumulate_kernel(const float* c, std::int64_t f, long long* high, long long* low,
                                  unsigned long long* flag) {
  const std::int64_t j = blockIdx.y;
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < j || i >= f) return;
  const double v = static_cast<double>(c[i + j * f]);
  if (!isfinite(v)) {
    atomicMin(flag, static_cast<unsigned long long>(i + j * f));
    return;
  }
  long long h = 0, l = 0;
  fixed_limbs(v, h, l);
  const std::size_t p = packed_index(i, j, f);
  high[p] += h;
  low[p] += l;
}

__global__ void expand_kernel(const long long* high, const long long* low, std::int64_t f,
                              double factor, double* out) {
  const std::int64_t r = blockIdx.y;
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= f) return;
  const std::size_t p = r >= c ? packed_index(r, c, f) : packed_index(c, r, f);
  out[r * f + c] = __dmul_rn(from_limbs(high[p], low[p]), factor);
}

__global__ void to_limbs_kernel(const double* values, std::size_t count, long long* high,
                                long long* low) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    long long h = 0, l = 0;
    fixed_limbs(values[i], h, l);
    high[i] = h;
    low[i] = l;
  }
}

unsigned grid_for(std::size_t work, unsigned threads) {
  const std::size_t blocks = (work + threads - 1) / threads;
  return static_cast<unsigned>(std::min<std::size_t>(std::max<std::size_t>(blocks, 1), 1u << 20));
}

static_assert(sizeof(long long) == sizeof(std::int64_t));

}  // namespace

cudaError_t to_bf16(const float* in, std::size_t count, std::uint16_t* out, cudaStream_t stream) {
  to_bf16_kernel<<<grid_for(count, 256), 256, 0, stream>>>(in, count,
                                                           reinterpret_cast<__nv_bfloat16*>(out));
  return cudaGetLastError();
}

cudaError_t accumulate_limbs(const float* c, std::int64_t f, std::int64_t* high, std::int64_t* low,
                             unsigned long long* flag, cudaStream_t stream) {
  if (f <= 0 || f > 65535) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>((f + 255) / 256), static_cast<unsigned>(f));
  accumulate_kernel<<<grid, 256, 0, stream>>>(c, f, reinterpret_cast<long long*>(high),
                                              reinterpret_cast<long long*>(low), flag);
  return cudaGetLastError();
}

cudaError_t expand_limbs(const std::int64_t* high, const std::int64_t* low, std::int64_t f,
                         double factor, double* out, cudaStream_t stream) {
  if (f <= 0 || f > 65535) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>((f + 255) / 256), static_cast<unsigned>(f));
  expand_kernel<<<grid, 256, 0, stream>>>(reinterpret_cast<const long long*>(high),
                                          reinterpret_cast<const long long*>(low), f, factor, out);
  return cudaGetLastError();
}

cudaError_t to_limbs(const double* values, std::size_t count, std::int64_t* high, std::int64_t* low,
                     cudaStream_t stream) {
  to_limbs_kernel<<<grid_for(count, 256), 256, 0, stream>>>(
      values, count, reinterpret_cast<long long*>(high), reinterpret_cast<long long*>(low));
  return cudaGetLastError();
}

}  // namespace qshard::cuda::kernels
