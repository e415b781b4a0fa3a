#pragma once
// Counter-based pseudo-random fills on the device (benchmarks and tests): the value at index i
// depends on (seed, i) alone, so any launch shape gives the same data.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace qshard::cuda::kernels {

// out[i] = scale * N(0, 1) (Box-Muller over a splitmix64 hash of seed and i).
cudaError_t fill_normal(float* out, std::size_t count, std::uint64_t seed, float scale,
                        cudaStream_t stream);
// x[r, column] *= factor for the row-major [rows, cols] matrix x.
cudaError_t scale_column(float* x, std::int64_t rows, std::int64_t cols, std::int64_t column,
                         float factor, cudaStream_t stream);

}  // namespace qshard::cuda::kernels
