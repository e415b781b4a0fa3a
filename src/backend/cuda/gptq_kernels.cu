// The GPTQ kernels of the CUDA solver (C++17 device code). The quantizer arithmetic follows
// src/quant/quantizer.cpp operation by operation (double, round half to even, fp16 scales).
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "gptq_kernels.hpp"

namespace qshard::cuda::kernels {
namespace {

constexpr int kWarp = 32;
constexpr int kSlots = kMaxBatch / kWarp;  // weights of a row held by each lane
constexpr unsigned kFullMask = 0xffffffffu;
constexpr float kMinScale = 5.9604645e-08f;  // smallest positive fp16 (as the CPU quantizer)
constexpr std::size_t kBatchSharedBytes =
    sizeof(float) * (kMaxBatch * kMaxBatch + kRowsPerBlock * kMaxBatch) +
    sizeof(int) * 2 * kMaxBatch;

struct Params {
  float scale;
  int zero;
};

__device__ void report(unsigned long long* flag, unsigned long long index) {
  atomicMin(flag, index);
}

// params_for_range of src/quant/quantizer.cpp: the scale rounded to fp16, clamped to the smallest
// fp16; an fp16 overflow is reported (the CPU throws).
__device__ Params params_for_range(double xmin, double xmax, const QuantArgs& c,
                                   unsigned long long* flag, unsigned long long where) {
  const float raw = __double2float_rn((xmax - xmin) / static_cast<double>(c.maxq));
  float scale = __half2float(__float2half_rn(raw));
  if (!isfinite(scale)) {
    report(flag, where);
    scale = 1.0f;
  }
  scale = fmaxf(scale, kMinScale);
  const int zero =
      c.sym ? (c.maxq + 1) / 2 : static_cast<int>(rint(-xmin / static_cast<double>(scale)));
  return {scale, zero};
}

// quantize_value / dequantize_value of quant/quantizer.hpp (double, round half to even).
__device__ __forceinline__ int quantize(double x, const Params& p, int maxq) {
  const double q = rint(x / static_cast<double>(p.scale)) + static_cast<double>(p.zero);
  return static_cast<int>(fmin(fmax(q, 0.0), static_cast<double>(maxq)));
}
__device__ __forceinline__ double dequantize(int q, const Params& p) {
  return static_cast<double>(p.scale) * static_cast<double>(q - p.zero);
}

// find_params of src/quant/quantizer.cpp, one warp cooperating over `len` values get(0..len-1).
// Every lane returns the same parameters: the reductions are xor butterflies, whose result is
// bitwise the same on all lanes, and their order is fixed (deterministic).
template <typename Get>
__device__ Params warp_find_params(const Get& get, std::int64_t len, const QuantArgs& c,
                                   unsigned long long* flag, unsigned long long where) {
  const int lane = static_cast<int>(threadIdx.x) % kWarp;
  double lo = 0.0, hi = 0.0;
  bool bad = false;
  for (std::int64_t j = lane; j < len; j += kWarp) {
    const double v = get(j);
    bad = bad || !isfinite(v);
    lo = fmin(lo, v);
    hi = fmax(hi, v);
  }
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    lo = fmin(lo, __shfl_xor_sync(kFullMask, lo, offset));
    hi = fmax(hi, __shfl_xor_sync(kFullMask, hi, offset));
  }
  if (__any_sync(kFullMask, bad) && lane == 0) report(flag, where);
  double xmin = lo, xmax = hi;
  if (c.sym) {
    xmax = fmax(fabs(xmin), xmax);
    if (xmin < 0) xmin = -xmax;
  }
  if (xmin == 0.0 && xmax == 0.0) {
    xmin = -1.0;
    xmax = 1.0;
  }
  Params best = params_for_range(xmin, xmax, c, flag, where);
  if (!c.mse) return best;
  double best_error = INFINITY;
  const int steps = static_cast<int>(c.maxshrink * c.grid);
  for (int i = 0; i < steps; ++i) {
    const double shrink = 1.0 - static_cast<double>(i) / c.grid;
    const Params p = params_for_range(shrink * xmin, shrink * xmax, c, flag, where);
    double error = 0.0;
    for (std::int64_t j = lane; j < len; j += kWarp) {
      const double v = get(j);
      error += pow(fabs(dequantize(quantize(v, p, c.maxq), p) - v), c.norm);
    }
    for (int offset = kWarp / 2; offset > 0; offset /= 2)
      error += __shfl_xor_sync(kFullMask, error, offset);
    if (error < best_error) {
      best_error = error;
      best = p;
    }
  }
  return best;
}

// ---------------------------------------------------------------------------------------------
// Factorisation kernels.

__global__ void check_finite_kernel(const double* values, std::size_t count,
                                    unsigned long long* flag) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    if (!isfinite(values[i])) report(flag, i);
}

constexpr int kTile = 32, kTileRows = 8;

// A = J P^T H P J + lambda I (dead diagonals set to 1 first), column-major, through a shared
// tile so reads and writes are both coalesced: A(i, j) = H(perm[n-1-i], perm[n-1-j]).
__global__ void gather_kernel(const double* h, std::int64_t n, const std::int32_t* perm,
                              const std::uint8_t* dead, double lambda, double* a) {
  __shared__ double tile[kTile][kTile + 1];
  const std::int64_t i0 = static_cast<std::int64_t>(blockIdx.y) * kTile;
  const std::int64_t j0 = static_cast<std::int64_t>(blockIdx.x) * kTile;
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
  for (int yy = ty; yy < kTile; yy += kTileRows) {
    const std::int64_t i = i0 + yy, j = j0 + tx;
    if (i < n && j < n) {
      const std::int64_t row = perm[n - 1 - i], col = perm[n - 1 - j];
      double v = h[row * n + col];
      if (i == j) v = (dead[row] ? 1.0 : v) + lambda;
      tile[yy][tx] = v;
    }
  }
  __syncthreads();
  for (int yy = ty; yy < kTile; yy += kTileRows) {
    const std::int64_t j = j0 + yy, i = i0 + tx;
    if (i < n && j < n) a[i + j * n] = tile[tx][yy];
  }
}

// Whether the diagonal of L^-1 (column-major) is positive and finite (the CPU's check on U).
__global__ void check_diagonal_kernel(const double* a, std::int64_t n, unsigned long long* flag) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const double v = a[i + i * n];
    if (!(v > 0.0) || !isfinite(v)) report(flag, static_cast<unsigned long long>(i));
  }
}

// U = J L^-1 J: U(i, j) = Linv(n-1-i, n-1-j) for j >= i, 0 below; row-major double (optional)
// and fp32.
__global__ void scatter_kernel(const double* linv, std::int64_t n, double* u_double,
                               float* u_float) {
  __shared__ double tile[kTile][kTile + 1];
  const std::int64_t i0 = static_cast<std::int64_t>(blockIdx.y) * kTile;
  const std::int64_t j0 = static_cast<std::int64_t>(blockIdx.x) * kTile;
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
  for (int yy = ty; yy < kTile; yy += kTileRows) {
    const std::int64_t i = i0 + tx, j = j0 + yy;
    if (i < n && j < n) tile[yy][tx] = j >= i ? linv[(n - 1 - i) + (n - 1 - j) * n] : 0.0;
  }
  __syncthreads();
  for (int yy = ty; yy < kTile; yy += kTileRows) {
    const std::int64_t i = i0 + yy, j = j0 + tx;
    if (i < n && j < n) {
      const double v = tile[tx][yy];
      if (u_double != nullptr) u_double[i * n + j] = v;
      u_float[i * n + j] = static_cast<float>(v);
    }
  }
}

__global__ void to_float_kernel(const double* in, std::size_t count, float* out) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    out[i] = static_cast<float>(in[i]);
}

// ---------------------------------------------------------------------------------------------
// Solve kernels.

// W in solve order with dead columns zeroed; padding rows zero. Non-finite inputs are reported
// by their index in `weight`.
__global__ void prepare_kernel(const float* weight, std::int64_t rows, std::int64_t rows_padded,
                               std::int64_t n, const std::int32_t* perm, const std::uint8_t* dead,
                               float* out, unsigned long long* flag) {
  const std::size_t total = static_cast<std::size_t>(rows_padded) * n;
  for (std::size_t idx = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
       idx < total; idx += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::int64_t r = static_cast<std::int64_t>(idx / n);
    const std::int64_t k = static_cast<std::int64_t>(idx % n);
    float v = 0.0f;
    if (r < rows) {
      const std::int64_t c = perm[k];
      v = weight[r * n + c];
      if (!isfinite(v)) report(flag, static_cast<unsigned long long>(r * n + c));
      if (dead[c]) v = 0.0f;
    }
    out[idx] = v;
  }
}

// Scales and zeros from the original weights (static groups, or one group per row): one warp per
// (row, group), the group's columns in original order.
__global__ void static_params_kernel(const float* weight, std::int64_t rows,
                                     std::int64_t rows_padded, std::int64_t n,
                                     const std::uint8_t* dead, std::int64_t group_size,
                                     std::int64_t groups, QuantArgs qa, float* scales,
                                     std::int32_t* zeros, unsigned long long* flag) {
  const std::int64_t warp_id =
      (blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x) / kWarp;
  if (warp_id >= rows_padded * groups) return;  // whole warps leave together
  const std::int64_t r = warp_id / groups, g = warp_id % groups;
  const std::int64_t begin = g * group_size, end = min(n, begin + group_size);
  const auto get = [&](std::int64_t j) -> double {
    const std::int64_t c = begin + j;
    return (r < rows && (dead == nullptr || !dead[c])) ? static_cast<double>(weight[r * n + c])
                                                       : 0.0;
  };
  const Params p = warp_find_params(get, end - begin, qa, flag, static_cast<unsigned long long>(r));
  if (threadIdx.x % kWarp == 0) {
    scales[r * groups + g] = p.scale;
    zeros[r * groups + g] = p.zero;
  }
}

// Parameters of the group starting at column k (inner position i) of row r, from the scratch
// row whose in-batch part the caller has written (Exact rule). Exact: columns beyond the inner
// batch get the pending updates of this lazy batch's errors (those before i1 from `err`, the
// inner batch's from shared memory); columns beyond the lazy batch have not received any of its
// errors yet, those inside it have received the earlier inner batches'. Reference: the lazy
// batch's columns as the batch started, later columns as they are.
__device__ __noinline__ Params dynamic_group_params(const BatchArgs& a, std::int64_t r,
                                                    std::int64_t k, const float* batch_err) {
  const int lane = static_cast<int>(threadIdx.x) % kWarp;
  const std::int64_t end = min(a.n, k + a.group_size), len = end - k;
  float* scratch = a.scratch + r * a.ld_scratch;
  const float* wrow = a.w + r * a.n;
  __syncwarp();
  if (!a.exact_rule) {
    for (std::int64_t j = k + lane; j < end; j += kWarp)
      scratch[j - k] = j < a.outer_end ? a.ref[r * a.ld_ref + (j - a.outer_begin)] : wrow[j];
  } else {
    for (std::int64_t j = max(k, a.i2) + lane; j < end; j += kWarp) {
      float v = wrow[j];
      const std::int64_t first = j < a.outer_end ? a.i1 : a.outer_begin;
      for (std::int64_t t = first; t < k; ++t) {
        const float e = t >= a.i1 ? batch_err[t - a.i1] : a.err[r * a.ld_err + (t - a.outer_begin)];
        v = fmaf(-e, a.u[t * a.n + j], v);
      }
      scratch[j - k] = v;
    }
  }
  __syncwarp();
  const auto get = [&](std::int64_t j) -> double { return static_cast<double>(scratch[j]); };
  return warp_find_params(get, len, a.qa, a.flag, static_cast<unsigned long long>(r));
}

// wv[s] without dynamic indexing (which would move the array to local memory).
__device__ __forceinline__ float pick(const float (&wv)[kSlots], int s) {
  float v = wv[0];
#pragma unroll
  for (int t = 1; t < kSlots; ++t) v = s == t ? wv[t] : v;
  return v;
}

// One inner batch of at most kMaxBatch columns: a warp per row, the batch's block of U in shared
// memory, lane l holding columns l, l+32, l+64, l+96 of its row in registers. Columns are solved
// in order; each column's error updates the later columns of the batch at once.
__global__ void __launch_bounds__(kRowsPerBlock* kWarp) gptq_batch_kernel(const BatchArgs a) {
  extern __shared__ float shared[];
  const int count = static_cast<int>(a.i2 - a.i1);
  float* us = shared;                      // [count][count]
  float* errors = shared + count * count;  // [kRowsPerBlock][kMaxBatch]
  // The batch's groups and original columns (off the per-column critical path).
  int* batch_group = reinterpret_cast<int*>(errors + kRowsPerBlock * kMaxBatch);
  int* batch_column = batch_group + kMaxBatch;
  const int warp = static_cast<int>(threadIdx.x) / kWarp;
  const int lane = static_cast<int>(threadIdx.x) % kWarp;
  const std::int64_t r = static_cast<std::int64_t>(blockIdx.x) * kRowsPerBlock + warp;
  for (int idx = static_cast<int>(threadIdx.x); idx < count * count;
       idx += static_cast<int>(blockDim.x)) {
    const int p = idx / count, q = idx % count;
    us[idx] = a.u[(a.i1 + p) * a.n + a.i1 + q];
  }
  for (int i = static_cast<int>(threadIdx.x); i < count; i += static_cast<int>(blockDim.x)) {
    batch_group[i] = a.group_of_position[a.i1 + i];
    batch_column[i] = a.perm[a.i1 + i];
  }
  float* wrow = a.w + r * a.n;
  float wv[kSlots];
#pragma unroll
  for (int s = 0; s < kSlots; ++s) {
    const int c = lane + s * kWarp;
    wv[s] = c < count ? wrow[a.i1 + c] : 0.0f;
  }
  float* batch_err = errors + warp * kMaxBatch;
  __syncthreads();

  Params p{1.0f, 0};
  int current_group = -1;
#pragma unroll 1
  for (int s = 0; s < kSlots; ++s) {
    for (int l = 0; l < kWarp; ++l) {
      const int i = s * kWarp + l;
      if (i >= count) break;
      const std::int64_t k = a.i1 + i;
      const int g = batch_group[i];
      if (a.dynamic_groups && k % a.group_size == 0) {
        if (a.exact_rule) {
          // The group's columns inside this inner batch: the current (compensated) registers.
          const std::int64_t stop = min(k + a.group_size, a.i2);
          float* scratch = a.scratch + r * a.ld_scratch;
#pragma unroll
          for (int s2 = 0; s2 < kSlots; ++s2) {
            const std::int64_t j = a.i1 + lane + s2 * kWarp;
            if (j >= k && j < stop) scratch[j - k] = wv[s2];
          }
        }
        p = dynamic_group_params(a, r, k, batch_err);
        if (lane == 0) {
          a.scales[r * a.groups + g] = p.scale;
          a.zeros[r * a.groups + g] = p.zero;
        }
      } else if (g != current_group) {
        p = {a.scales[r * a.groups + g], a.zeros[r * a.groups + g]};
      }
      current_group = g;

      const float value = __shfl_sync(kFullMask, pick(wv, s), l);
      const int code = quantize(static_cast<double>(value), p, a.qa.maxq);
      const float e = static_cast<float>((static_cast<double>(value) - dequantize(code, p)) /
                                         static_cast<double>(us[i * count + i]));
      if (lane == 0) {
        a.codes[r * a.n + batch_column[i]] = static_cast<std::uint8_t>(code);
        batch_err[i] = e;
      }
#pragma unroll
      for (int s2 = 0; s2 < kSlots; ++s2) {
        const int c = lane + s2 * kWarp;
        if (c > i && c < count) wv[s2] = fmaf(-e, us[i * count + c], wv[s2]);
      }
    }
  }
  __syncwarp();
  for (int c = lane; c < count; c += kWarp)
    a.err[r * a.ld_err + (a.i1 - a.outer_begin) + c] = batch_err[c];
}

unsigned grid_for(std::size_t work, unsigned threads) {
  const std::size_t blocks = (work + threads - 1) / threads;
  return static_cast<unsigned>(std::min<std::size_t>(std::max<std::size_t>(blocks, 1), 1u << 20));
}

dim3 tile_grid(std::int64_t n) {
  const auto tiles = static_cast<unsigned>((n + kTile - 1) / kTile);
  return dim3(tiles, tiles);
}

}  // namespace

cudaError_t configure_batch_kernel() {
  return cudaFuncSetAttribute(gptq_batch_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(kBatchSharedBytes));
}

cudaError_t check_finite(const double* values, std::size_t count, unsigned long long* flag,
                         cudaStream_t stream) {
  check_finite_kernel<<<grid_for(count, 256), 256, 0, stream>>>(values, count, flag);
  return cudaGetLastError();
}

cudaError_t gather_reversed(const double* h, std::int64_t n, const std::int32_t* perm,
                            const std::uint8_t* dead, double lambda, double* a,
                            cudaStream_t stream) {
  gather_kernel<<<tile_grid(n), dim3(kTile, kTileRows), 0, stream>>>(h, n, perm, dead, lambda, a);
  return cudaGetLastError();
}

cudaError_t check_diagonal(const double* a, std::int64_t n, unsigned long long* flag,
                           cudaStream_t stream) {
  check_diagonal_kernel<<<grid_for(static_cast<std::size_t>(n), 256), 256, 0, stream>>>(a, n, flag);
  return cudaGetLastError();
}

cudaError_t scatter_reversed(const double* linv, std::int64_t n, double* u_double, float* u_float,
                             cudaStream_t stream) {
  scatter_kernel<<<tile_grid(n), dim3(kTile, kTileRows), 0, stream>>>(linv, n, u_double, u_float);
  return cudaGetLastError();
}

cudaError_t to_float(const double* in, std::size_t count, float* out, cudaStream_t stream) {
  to_float_kernel<<<grid_for(count, 256), 256, 0, stream>>>(in, count, out);
  return cudaGetLastError();
}

cudaError_t prepare_weights(const float* weight, std::int64_t rows, std::int64_t rows_padded,
                            std::int64_t n, const std::int32_t* perm, const std::uint8_t* dead,
                            float* out, unsigned long long* flag, cudaStream_t stream) {
  const std::size_t total = static_cast<std::size_t>(rows_padded) * static_cast<std::size_t>(n);
  prepare_kernel<<<grid_for(total, 256), 256, 0, stream>>>(weight, rows, rows_padded, n, perm, dead,
                                                           out, flag);
  return cudaGetLastError();
}

cudaError_t static_group_params(const float* weight, std::int64_t rows, std::int64_t rows_padded,
                                std::int64_t n, const std::uint8_t* dead, std::int64_t group_size,
                                std::int64_t groups, const QuantArgs& qa, float* scales,
                                std::int32_t* zeros, unsigned long long* flag,
                                cudaStream_t stream) {
  const std::size_t threads = static_cast<std::size_t>(rows_padded * groups) * kWarp;
  static_params_kernel<<<static_cast<unsigned>((threads + 255) / 256), 256, 0, stream>>>(
      weight, rows, rows_padded, n, dead, group_size, groups, qa, scales, zeros, flag);
  return cudaGetLastError();
}

cudaError_t gptq_batch(const BatchArgs& args, std::int64_t rows_padded, cudaStream_t stream) {
  if (args.i2 - args.i1 > kMaxBatch || args.i2 <= args.i1 || rows_padded % kRowsPerBlock != 0)
    return cudaErrorInvalidValue;
  gptq_batch_kernel<<<static_cast<unsigned>(rows_padded / kRowsPerBlock), kRowsPerBlock * kWarp,
                      kBatchSharedBytes, stream>>>(args);
  return cudaGetLastError();
}

namespace {
__global__ void difference_kernel(const float* a, const float* b, std::size_t count, double* d) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    d[i] = static_cast<double>(a[i]) - static_cast<double>(b[i]);
}
}  // namespace

namespace {
__global__ void rtn_codes_kernel(const float* weight, std::int64_t rows, std::int64_t rows_padded,
                                 std::int64_t n, std::int64_t group_size, std::int64_t groups,
                                 int maxq, const float* scales, const std::int32_t* zeros,
                                 std::uint8_t* codes) {
  const std::size_t total = static_cast<std::size_t>(rows_padded) * n;
  for (std::size_t idx = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
       idx < total; idx += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::int64_t r = static_cast<std::int64_t>(idx / n);
    const std::int64_t c = static_cast<std::int64_t>(idx % n);
    int code = 0;
    if (r < rows) {
      const std::int64_t g = r * groups + c / group_size;
      code = quantize(static_cast<double>(weight[idx]), Params{scales[g], zeros[g]}, maxq);
    }
    codes[idx] = static_cast<std::uint8_t>(code);
  }
}

__global__ void residual_kernel(const float* weight, const std::uint8_t* codes, const float* scales,
                                const std::int32_t* zeros, const std::int32_t* g_idx,
                                std::int64_t rows, std::int64_t chunk, std::int64_t n,
                                std::int64_t groups, double* d) {
  const std::size_t total = static_cast<std::size_t>(chunk) * n;
  for (std::size_t idx = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
       idx < total; idx += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::int64_t r = static_cast<std::int64_t>(idx / n);
    const std::int64_t c = static_cast<std::int64_t>(idx % n);
    double value = 0.0;
    if (r < rows) {
      const std::int64_t g = r * groups + g_idx[c];
      const float w_hat = __double2float_rn(static_cast<double>(scales[g]) *
                                            static_cast<double>(codes[idx] - zeros[g]));
      value = static_cast<double>(weight[idx]) - static_cast<double>(w_hat);
    }
    d[idx] = value;
  }
}

constexpr int kDotThreads = 256;

__global__ void row_dot_kernel(const double* a, const double* b, std::int64_t n, double* out) {
  __shared__ double partial[kDotThreads];
  const std::int64_t r = blockIdx.x;
  double sum = 0.0;
  for (std::int64_t c = threadIdx.x; c < n; c += kDotThreads) sum += a[r * n + c] * b[r * n + c];
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int stride = kDotThreads / 2; stride > 0; stride /= 2) {
    if (static_cast<int>(threadIdx.x) < stride)
      partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[r] = partial[0];
}
}  // namespace

cudaError_t rtn_codes(const float* weight, std::int64_t rows, std::int64_t rows_padded,
                      std::int64_t n, std::int64_t group_size, std::int64_t groups, int maxq,
                      const float* scales, const std::int32_t* zeros, std::uint8_t* codes,
                      cudaStream_t stream) {
  const std::size_t total = static_cast<std::size_t>(rows_padded) * static_cast<std::size_t>(n);
  if (total == 0) return cudaSuccess;
  rtn_codes_kernel<<<grid_for(total, 256), 256, 0, stream>>>(
      weight, rows, rows_padded, n, group_size, groups, maxq, scales, zeros, codes);
  return cudaGetLastError();
}

cudaError_t residual(const float* weight, const std::uint8_t* codes, const float* scales,
                     const std::int32_t* zeros, const std::int32_t* g_idx, std::int64_t rows,
                     std::int64_t chunk, std::int64_t n, std::int64_t groups, double* d,
                     cudaStream_t stream) {
  const std::size_t total = static_cast<std::size_t>(chunk) * static_cast<std::size_t>(n);
  if (total == 0) return cudaSuccess;
  residual_kernel<<<grid_for(total, 256), 256, 0, stream>>>(weight, codes, scales, zeros, g_idx,
                                                            rows, chunk, n, groups, d);
  return cudaGetLastError();
}

cudaError_t row_dot(const double* a, const double* b, std::int64_t rows, std::int64_t n,
                    double* out, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  row_dot_kernel<<<static_cast<unsigned>(rows), kDotThreads, 0, stream>>>(a, b, n, out);
  return cudaGetLastError();
}

cudaError_t difference(const float* a, const float* b, std::size_t count, double* d,
                       cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  const auto blocks = static_cast<unsigned>(std::min<std::size_t>((count + 255) / 256, 1u << 20));
  difference_kernel<<<blocks, 256, 0, stream>>>(a, b, count, d);
  return cudaGetLastError();
}

}  // namespace qshard::cuda::kernels
