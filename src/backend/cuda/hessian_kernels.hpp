#pragma once
// Kernels of the CUDA Hessian builder behind a C++17 interface (see cuda_hessian.hpp). The limbs
// are the fixed-point scheme of quant/hessian.hpp, held for the lower triangle only, packed by
// columns: element (i, j), i >= j, at j * f - j * (j - 1) / 2 + (i - j).
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace qshard::cuda::kernels {

inline std::size_t packed_count(std::int64_t f) {
  return static_cast<std::size_t>(f) * static_cast<std::size_t>(f + 1) / 2;
}

// fp32 -> bf16 (round to nearest even), `out` holds uint16 bf16 bit patterns.
cudaError_t to_bf16(const float* in, std::size_t count, std::uint16_t* out, cudaStream_t stream);
// Adds the lower triangle of the f x f column-major fp32 matrix `c`, each value rounded to the
// 2^-fraction_bits grid as to_fixed_limbs does, to the packed limbs. Reports the column-major
// index of a non-finite value.
cudaError_t accumulate_limbs(const float* c, std::int64_t f, std::int64_t* high, std::int64_t* low,
                             unsigned long long* flag, cudaStream_t stream);
// out (row-major f x f, symmetric) = from_fixed_limbs(packed) * factor.
cudaError_t expand_limbs(const std::int64_t* high, const std::int64_t* low, std::int64_t f,
                         double factor, double* out, cudaStream_t stream);
// Device versions of to_fixed_limbs / from_fixed_limbs over arrays (for tests).
cudaError_t to_limbs(const double* values, std::size_t count, std::int64_t* high, std::int64_t* low,
                     cudaStream_t stream);

}  // namespace qshard::cuda::kernels
