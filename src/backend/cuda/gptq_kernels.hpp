#pragma once
// The GPTQ kernels of the CUDA solver behind a C++17 interface of plain pointers (device code is
// compiled as C++17; the host side in gptq_solver.cpp is C++20). Every launcher enqueues on
// `stream` and returns the launch status.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace qshard::cuda::kernels {

constexpr int kMaxBatch = 128;     // columns of an inner batch (its block of U in shared memory)
constexpr int kRowsPerBlock = 16;  // rows (one warp each) per block of the fused batch kernel
constexpr unsigned long long kNoError = ~0ull;

// The quantizer settings as the kernels need them (QuantConfig without its methods).
struct QuantArgs {
  int maxq = 15;
  bool sym = false;
  bool mse = false;
  int grid = 100;
  double maxshrink = 0.8;
  double norm = 2.4;
};

// Error flags hold the smallest offending index (kNoError when none).

// Sets the fused kernel's shared-memory limit (once per device).
cudaError_t configure_batch_kernel();

// d[i] = double(a[i]) - double(b[i]).
cudaError_t difference(const float* a, const float* b, std::size_t count, double* d,
                       cudaStream_t stream);

cudaError_t check_finite(const double* values, std::size_t count, unsigned long long* flag,
                         cudaStream_t stream);
// A = J P^T H P J + lambda I (dead diagonals 1 first), column-major: A(i, j) =
// H(perm[n-1-i], perm[n-1-j]).
cudaError_t gather_reversed(const double* h, std::int64_t n, const std::int32_t* perm,
                            const std::uint8_t* dead, double lambda, double* a,
                            cudaStream_t stream);
// Reports i when the i-th diagonal entry of the column-major `a` is not positive and finite.
cudaError_t check_diagonal(const double* a, std::int64_t n, unsigned long long* flag,
                           cudaStream_t stream);
// U(i, j) = Linv(n-1-i, n-1-j) for j >= i, else 0: row-major, double (when u_double is not null)
// and fp32.
cudaError_t scatter_reversed(const double* linv, std::int64_t n, double* u_double, float* u_float,
                             cudaStream_t stream);
cudaError_t to_float(const double* in, std::size_t count, float* out, cudaStream_t stream);

// W in solve order, dead columns zeroed, rows [rows, rows_padded) zero; reports the index in
// `weight` of a non-finite value.
cudaError_t prepare_weights(const float* weight, std::int64_t rows, std::int64_t rows_padded,
                            std::int64_t n, const std::int32_t* perm, const std::uint8_t* dead,
                            float* out, unsigned long long* flag, cudaStream_t stream);
// Scales and zeros [rows_padded, groups] of the original (dead-zeroed; `dead` may be null)
// weights' groups of `group_size` consecutive columns; reports the row of an fp16 overflow.
cudaError_t static_group_params(const float* weight, std::int64_t rows, std::int64_t rows_padded,
                                std::int64_t n, const std::uint8_t* dead, std::int64_t group_size,
                                std::int64_t groups, const QuantArgs& qa, float* scales,
                                std::int32_t* zeros, unsigned long long* flag, cudaStream_t stream);

struct BatchArgs {
  float* w = nullptr;  // working weights [rows_padded, n], solve order
  std::int64_t n = 0;
  const float* u = nullptr;  // U fp32 [n, n]
  float* err = nullptr;      // the lazy batch's scaled errors [rows_padded, ld_err]
  std::int64_t ld_err = 0;
  const float* ref = nullptr;  // Reference rule: the lazy batch's columns as the batch started
  std::int64_t ld_ref = 0;
  std::int64_t i1 = 0, i2 = 0;                  // this inner batch (i2 - i1 <= kMaxBatch)
  std::int64_t outer_begin = 0, outer_end = 0;  // its lazy batch of block_size columns
  const std::int32_t* group_of_position = nullptr;
  const std::int32_t* perm = nullptr;
  std::uint8_t* codes = nullptr;  // [rows_padded, n], original column order
  float* scales = nullptr;        // [rows_padded, groups]
  std::int32_t* zeros = nullptr;
  std::int64_t groups = 0;
  float* scratch = nullptr;  // [rows_padded, ld_scratch]: the values of a starting group
  std::int64_t ld_scratch = 0;
  std::int64_t group_size = 0;  // columns per group (n for one group per row)
  bool dynamic_groups = false;  // parameters computed when a group starts (else precomputed)
  bool exact_rule = true;
  QuantArgs qa;
  unsigned long long* flag = nullptr;  // row of an fp16 scale overflow
};
// Round-to-nearest codes [rows_padded, n] of `weight` [rows, n] with the parameters of groups of
// group_size consecutive columns (static_group_params with no dead inputs); padding rows get 0.
cudaError_t rtn_codes(const float* weight, std::int64_t rows, std::int64_t rows_padded,
                      std::int64_t n, std::int64_t group_size, std::int64_t groups, int maxq,
                      const float* scales, const std::int32_t* zeros, std::uint8_t* codes,
                      cudaStream_t stream);

// d [chunk, n] = double(weight) - double(W_hat) for rows [0, rows), zero for rows [rows, chunk);
// W_hat = float(double(scale) * (code - zero)) as QuantizedWeight::dequantize. codes [*, n],
// scales and zeros [*, groups], g_idx [n].
cudaError_t residual(const float* weight, const std::uint8_t* codes, const float* scales,
                     const std::int32_t* zeros, const std::int32_t* g_idx, std::int64_t rows,
                     std::int64_t chunk, std::int64_t n, std::int64_t groups, double* d,
                     cudaStream_t stream);

// out[r] = sum_c a[r, c] b[r, c] for r < rows (one block per row, a fixed reduction order).
cudaError_t row_dot(const double* a, const double* b, std::int64_t rows, std::int64_t n,
                    double* out, cudaStream_t stream);

// One inner batch for all rows_padded rows (a multiple of kRowsPerBlock).
cudaError_t gptq_batch(const BatchArgs& args, std::int64_t rows_padded, cudaStream_t stream);

}  // namespace qshard::cuda::kernels
