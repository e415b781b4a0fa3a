// The CUDA GPTQ solver, host side: factorisation with cuSOLVER (fp64), the blocked solve with the
// fused batch kernel and cuBLAS SGEMM trailing updates (fp32), the device factor cache. The
// semantics are the CPU solver's (backends/cpu/gptq_solver.cpp, quant/gptq_plan.cpp); see
// backend/cuda/cuda_solver.hpp for the design.
#include <algorithm>
#include <cmath>
#include <list>
#include <mutex>
#include <numeric>

#include "gptq_kernels.hpp"
#include "qshard/backend/cuda/cuda_solver.hpp"
#include "qshard/quant/gptq_plan.hpp"
#include "qshard/quant/quantized_weight.hpp"

namespace qshard::cuda {
namespace {

using kernels::kMaxBatch;
using kernels::kNoError;
using kernels::kRowsPerBlock;

kernels::QuantArgs quant_args(const QuantConfig& c) {
  return {c.maxq(), c.sym, c.mse, c.mse_grid, c.mse_maxshrink, c.mse_norm};
}

// The shared group plan (quant/gptq_plan.hpp) of a device factor (it needs only the permutation).
GroupPlan plan_for(const DeviceFactor& f, const GptqOptions& options) {
  HessianFactor h;
  h.columns = f.columns;
  h.perm = f.perm;
  return plan_groups(h, options);
}

// FNV-1a over bytes, for the factor fingerprint.
struct Hasher {
  std::uint64_t h = 1469598103934665603ull;
  void bytes(const void* p, std::size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  }
  template <typename T>
  void value(const T& v) {
    bytes(&v, sizeof(v));
  }
};

// perm, dead, damping and 1280 entries of U (256 on the diagonal, 1024 pseudo-random in the upper
// triangle): a factor with other contents at a recycled address is told apart.
std::uint64_t fingerprint(const HessianFactor& f) {
  Hasher h;
  h.value(f.columns);
  h.bytes(f.perm.data(), f.perm.size() * sizeof(std::int32_t));
  h.bytes(f.dead.data(), f.dead.size());
  h.value(f.damp_percent_used);
  h.value(f.damp_steps);
  const std::int64_t n = f.hinv_upper.rows();
  if (n > 0 && f.hinv_upper.cols() == n) {
    for (std::int64_t s = 0; s < 256; ++s) h.value(f.hinv_upper(s * n / 256, s * n / 256));
    std::uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int s = 0; s < 1024; ++s) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      const auto i = static_cast<std::int64_t>((x >> 33) % static_cast<std::uint64_t>(n));
      const auto j = i + static_cast<std::int64_t>((x >> 7) % static_cast<std::uint64_t>(n - i));
      h.value(f.hinv_upper(i, j));
    }
  }
  return h.h;
}

// The diagonal and 1024 pseudo-random entries of H.
std::uint64_t fingerprint(const MatrixD& h) {
  Hasher hash;
  const std::int64_t n = h.rows();
  hash.value(n);
  if (n > 0 && h.cols() == n) {
    for (std::int64_t i = 0; i < n; ++i) hash.value(h(i, i));
    std::uint64_t x = 0x243f6a8885a308d3ull;
    for (int s = 0; s < 1024; ++s) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      hash.value(h(static_cast<std::int64_t>((x >> 33) % static_cast<std::uint64_t>(n)),
                   static_cast<std::int64_t>((x >> 7) % static_cast<std::uint64_t>(n))));
    }
  }
  return hash.h;
}

}  // namespace

struct CudaSolver::State {
  State(int device_, CudaSolverOptions options_)
      : device(device_), options(options_), cublas(stream.get()), cusolver(stream.get()) {
    QSHARD_CUDA_CHECK(kernels::configure_batch_kernel());
  }

  struct CacheEntry {
    const double* key = nullptr;
    std::int64_t columns = 0;
    std::uint64_t fingerprint = 0;
    std::shared_ptr<const DeviceFactor> factor;
  };

  const int device;
  const CudaSolverOptions options;
  std::mutex mutex;
  Stream stream;
  CublasHandle cublas;
  CusolverHandle cusolver;
  CusolverParams params;
  ErrorIndex input_error, scale_error;
  std::list<CacheEntry> cache;  // most recently used first

  struct HessianEntry {
    const double* key = nullptr;
    std::int64_t n = 0;
    std::uint64_t fingerprint = 0;
    std::shared_ptr<DeviceBuffer<double>> h;
  };
  std::list<HessianEntry> hessians;  // for objective(); most recently used first
  DeviceBuffer<float> objective_w, objective_q;
  DeviceBuffer<double> objective_d, objective_dh;
  DeviceBuffer<double> objective_out;

  const DeviceBuffer<double>& device_hessian(const MatrixD& h) {
    const std::uint64_t fp = fingerprint(h);
    for (auto it = hessians.begin(); it != hessians.end(); ++it) {
      if (it->key == h.data() && it->n == h.rows() && it->fingerprint == fp) {
        hessians.splice(hessians.begin(), hessians, it);
        return *hessians.front().h;
      }
    }
    auto buffer = std::make_shared<DeviceBuffer<double>>(h.size());
    buffer->upload(h.data(), h.size(), stream.get());
    hessians.push_front({h.data(), h.rows(), fp, std::move(buffer)});
    while (hessians.size() > 2) hessians.pop_back();
    return *hessians.front().h;
  }

  void remember(const HessianFactor& f, std::shared_ptr<const DeviceFactor> factor) {
    cache.push_front({f.hinv_upper.data(), f.columns, fingerprint(f), std::move(factor)});
    while (cache.size() > std::max<std::size_t>(options.cached_factors, 1)) cache.pop_back();
  }
  std::shared_ptr<const DeviceFactor> lookup(const HessianFactor& f) {
    const std::uint64_t fp = fingerprint(f);
    for (auto it = cache.begin(); it != cache.end(); ++it) {
      if (it->key == f.hinv_upper.data() && it->columns == f.columns && it->fingerprint == fp) {
        cache.splice(cache.begin(), cache, it);
        return cache.front().factor;
      }
    }
    return nullptr;
  }
};

CudaSolver::CudaSolver(int device, CudaSolverOptions options) {
  require(options.panel_rows > 0 && options.panel_rows % kRowsPerBlock == 0,
          "CudaSolver: panel_rows must be a positive multiple of ", kRowsPerBlock, " (got ",
          options.panel_rows, ")");
  const DeviceGuard guard(device);
  state_ = std::make_unique<State>(device, options);
}

CudaSolver::~CudaSolver() {
  int previous = 0;
  const bool switched = cudaGetDevice(&previous) == cudaSuccess && previous != state_->device &&
                        cudaSetDevice(state_->device) == cudaSuccess;
  state_.reset();
  if (switched) (void)cudaSetDevice(previous);
}

int CudaSolver::device() const { return state_->device; }
cudaStream_t CudaSolver::stream() const { return state_->stream.get(); }

void CudaSolver::clear_cache() const {
  const std::lock_guard lock(state_->mutex);
  state_->cache.clear();
}

std::shared_ptr<const DeviceFactor> CudaSolver::factorize_device(const MatrixD& hessian,
                                                                 const GptqOptions& options,
                                                                 HessianFactor* host_factor,
                                                                 FactorizeTimings* timings) const {
  options.validate();
  const std::int64_t n = hessian.rows();
  require(n > 0 && hessian.cols() == n, "Hessian must be square (got [", hessian.rows(), ", ",
          hessian.cols(), "])");
  State& s = *state_;
  const DeviceGuard guard(s.device);
  const std::lock_guard lock(s.mutex);
  const std::size_t nn = static_cast<std::size_t>(n) * static_cast<std::size_t>(n);
  const Event start;
  start.record(s.stream.get());
  DeviceBuffer<double> h(nn);
  h.upload(hessian.data(), nn, s.stream.get());
  return factorize_buffer(h, n, options, host_factor, timings, start);
}

std::shared_ptr<const DeviceFactor> CudaSolver::factorize_device(const double* hessian,
                                                                 std::int64_t n,
                                                                 const GptqOptions& options,
                                                                 FactorizeTimings* timings) const {
  options.validate();
  require(n > 0, "Hessian of ", n, " features");
  State& s = *state_;
  const DeviceGuard guard(s.device);
  const std::lock_guard lock(s.mutex);
  const std::size_t nn = static_cast<std::size_t>(n) * static_cast<std::size_t>(n);
  const Event start;
  start.record(s.stream.get());
  DeviceBuffer<double> h(nn);  // the factorisation overwrites its copy
  QSHARD_CUDA_CHECK(cudaMemcpyAsync(h.data(), hessian, nn * sizeof(double),
                                    cudaMemcpyDeviceToDevice, s.stream.get()));
  return factorize_buffer(h, n, options, nullptr, timings, start);
}

std::shared_ptr<const DeviceFactor> CudaSolver::factorize_buffer(
    DeviceBuffer<double>& h, std::int64_t n, const GptqOptions& options, HessianFactor* host_factor,
    FactorizeTimings* timings, const Event& start) const {
  State& s = *state_;
  const cudaStream_t stream = s.stream.get();
  const std::size_t nn = static_cast<std::size_t>(n) * static_cast<std::size_t>(n);
  const Event uploaded, factored, downloaded;
  s.input_error.reset(stream);
  QSHARD_CUDA_CHECK(kernels::check_finite(h.data(), nn, s.input_error.data(), stream));
  if (const std::uint64_t bad = s.input_error.fetch(stream); bad != kNoError) {
    const auto i = static_cast<std::int64_t>(bad / static_cast<std::uint64_t>(n));
    const auto j = static_cast<std::int64_t>(bad % static_cast<std::uint64_t>(n));
    double value = 0.0;
    h.download(&value, 1, stream, static_cast<std::size_t>(bad));
    s.stream.synchronize();
    throw Error(str("Hessian has a non-finite value ", value, " at (", i, ", ", j, ")"));
  }
  std::vector<double> diagonal(static_cast<std::size_t>(n));
  QSHARD_CUDA_CHECK(cudaMemcpy2DAsync(
      diagonal.data(), sizeof(double), h.data(), (static_cast<std::size_t>(n) + 1) * sizeof(double),
      sizeof(double), static_cast<std::size_t>(n), cudaMemcpyDeviceToHost, stream));
  s.stream.synchronize();

  // Dead inputs, the act_order permutation and the mean diagonal exactly as the CPU solver.
  auto f = std::make_shared<DeviceFactor>();
  f->columns = n;
  f->dead.assign(static_cast<std::size_t>(n), 0);
  std::vector<double> diag(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    diag[static_cast<std::size_t>(i)] = diagonal[static_cast<std::size_t>(i)];
    if (diagonal[static_cast<std::size_t>(i)] == 0.0) {
      f->dead[static_cast<std::size_t>(i)] = 1;
      diag[static_cast<std::size_t>(i)] = 1.0;
    }
  }
  f->perm.resize(static_cast<std::size_t>(n));
  std::iota(f->perm.begin(), f->perm.end(), 0);
  if (options.act_order) {
    std::stable_sort(f->perm.begin(), f->perm.end(), [&](std::int32_t a, std::int32_t b) {
      return diag[static_cast<std::size_t>(a)] > diag[static_cast<std::size_t>(b)];
    });
  }
  const double mean_diag = std::accumulate(diag.begin(), diag.end(), 0.0) / static_cast<double>(n);
  f->perm_device = DeviceBuffer<std::int32_t>(static_cast<std::size_t>(n));
  f->perm_device.upload(f->perm.data(), f->perm.size(), stream);
  f->dead_device = DeviceBuffer<std::uint8_t>(static_cast<std::size_t>(n));
  f->dead_device.upload(f->dead.data(), f->dead.size(), stream);

  uploaded.record(stream);
  DeviceBuffer<double> a(nn);
  std::size_t potrf_device = 0, potrf_host = 0, trtri_device = 0, trtri_host = 0;
  QSHARD_CUDA_CHECK(cusolverDnXpotrf_bufferSize(s.cusolver.get(), s.params.get(),
                                                CUBLAS_FILL_MODE_LOWER, n, CUDA_R_64F, a.data(), n,
                                                CUDA_R_64F, &potrf_device, &potrf_host));
  QSHARD_CUDA_CHECK(cusolverDnXtrtri_bufferSize(s.cusolver.get(), CUBLAS_FILL_MODE_LOWER,
                                                CUBLAS_DIAG_NON_UNIT, n, CUDA_R_64F, a.data(), n,
                                                &trtri_device, &trtri_host));
  DeviceBuffer<std::byte> work_device(std::max<std::size_t>({potrf_device, trtri_device, 1}));
  std::vector<std::byte> work_host(std::max<std::size_t>({potrf_host, trtri_host, 1}));
  DeviceBuffer<int> info_device(1);

  double damp = options.damp_percent;
  for (int step = 0; step <= options.max_damp_steps; ++step) {
    QSHARD_CUDA_CHECK(kernels::gather_reversed(h.data(), n, f->perm_device.data(),
                                               f->dead_device.data(), damp * mean_diag, a.data(),
                                               stream));
    QSHARD_CUDA_CHECK(cusolverDnXpotrf(s.cusolver.get(), s.params.get(), CUBLAS_FILL_MODE_LOWER, n,
                                       CUDA_R_64F, a.data(), n, CUDA_R_64F, work_device.data(),
                                       potrf_device, work_host.data(), potrf_host,
                                       info_device.data()));
    int info = 0;
    info_device.download(&info, 1, stream);
    s.stream.synchronize();
    require(info >= 0, "cusolverDnXpotrf: invalid argument ", -info);
    bool ok = info == 0;
    if (ok) {
      QSHARD_CUDA_CHECK(cusolverDnXtrtri(
          s.cusolver.get(), CUBLAS_FILL_MODE_LOWER, CUBLAS_DIAG_NON_UNIT, n, CUDA_R_64F, a.data(),
          n, work_device.data(), trtri_device, work_host.data(), trtri_host, info_device.data()));
      info_device.download(&info, 1, stream);
      s.stream.synchronize();
      require(info >= 0, "cusolverDnXtrtri: invalid argument ", -info);
      ok = info == 0;
    }
    if (ok) {
      s.input_error.reset(stream);
      QSHARD_CUDA_CHECK(kernels::check_diagonal(a.data(), n, s.input_error.data(), stream));
      ok = s.input_error.fetch(stream) == kNoError;
    }
    if (ok) {
      f->hinv_upper = DeviceBuffer<float>(nn);
      // The double U goes where H was (H is no longer needed).
      QSHARD_CUDA_CHECK(kernels::scatter_reversed(
          a.data(), n, host_factor != nullptr ? h.data() : nullptr, f->hinv_upper.data(), stream));
      f->damp_percent_used = damp;
      f->damp_steps = step;
      factored.record(stream);
      if (host_factor != nullptr) {
        host_factor->columns = n;
        host_factor->perm = f->perm;
        host_factor->dead = f->dead;
        host_factor->damp_percent_used = damp;
        host_factor->damp_steps = step;
        host_factor->hinv_upper = MatrixD(n, n);
        h.download(host_factor->hinv_upper.data(), nn, stream);
      }
      downloaded.record(stream);
      s.stream.synchronize();
      if (timings != nullptr) {
        timings->upload_ms = uploaded.elapsed_ms_since(start);
        timings->factor_ms = factored.elapsed_ms_since(uploaded);
        timings->download_ms = downloaded.elapsed_ms_since(factored);
      }
      return f;
    }
    if (step < options.max_damp_steps) damp = damp > 0.0 ? damp * 10.0 : 0.01;
  }
  throw Error(str("Hessian of ", n, " features is not positive definite even with damp_percent ",
                  damp, " after ", options.max_damp_steps,
                  " increases (too few calibration tokens, or degenerate inputs)"));
}

HessianFactor CudaSolver::factorize(const MatrixD& hessian, const GptqOptions& options) const {
  const DeviceGuard guard(state_->device);  // an evicted factor is freed on its device
  HessianFactor f;
  std::shared_ptr<const DeviceFactor> device_factor = factorize_device(hessian, options, &f);
  const std::lock_guard lock(state_->mutex);
  // Keyed by U's host buffer, which moves with the returned factor.
  state_->remember(f, std::move(device_factor));
  return f;
}

std::shared_ptr<const DeviceFactor> CudaSolver::upload_factor(const HessianFactor& factor) const {
  const std::int64_t n = factor.columns;
  require(n > 0 && factor.hinv_upper.rows() == n && factor.hinv_upper.cols() == n &&
              static_cast<std::int64_t>(factor.perm.size()) == n &&
              static_cast<std::int64_t>(factor.dead.size()) == n,
          "solve: malformed factorisation of ", n, " columns (U [", factor.hinv_upper.rows(), ", ",
          factor.hinv_upper.cols(), "], perm ", factor.perm.size(), ", dead ", factor.dead.size(),
          ")");
  State& s = *state_;
  const DeviceGuard guard(s.device);
  const std::lock_guard lock(s.mutex);
  const cudaStream_t stream = s.stream.get();
  const std::size_t nn = static_cast<std::size_t>(n) * static_cast<std::size_t>(n);
  auto f = std::make_shared<DeviceFactor>();
  f->columns = n;
  f->perm = factor.perm;
  f->dead = factor.dead;
  f->damp_percent_used = factor.damp_percent_used;
  f->damp_steps = factor.damp_steps;
  f->perm_device = DeviceBuffer<std::int32_t>(static_cast<std::size_t>(n));
  f->perm_device.upload(f->perm.data(), f->perm.size(), stream);
  f->dead_device = DeviceBuffer<std::uint8_t>(static_cast<std::size_t>(n));
  f->dead_device.upload(f->dead.data(), f->dead.size(), stream);
  DeviceBuffer<double> u(nn);
  u.upload(factor.hinv_upper.data(), nn, stream);
  f->hinv_upper = DeviceBuffer<float>(nn);
  QSHARD_CUDA_CHECK(kernels::to_float(u.data(), nn, f->hinv_upper.data(), stream));
  s.stream.synchronize();
  return f;
}

DeviceQuantized CudaSolver::solve_resident(const float* weight, std::int64_t rows,
                                           const DeviceFactor& factor,
                                           const GptqOptions& options) const {
  options.validate();
  const QuantConfig& qc = options.quant;
  const std::int64_t n = factor.columns;
  require(rows >= 0, "solve: negative row count ", rows);
  State& s = *state_;
  const DeviceGuard guard(s.device);
  const std::lock_guard lock(s.mutex);
  const cudaStream_t stream = s.stream.get();
  const std::int64_t panel = s.options.panel_rows;

  DeviceQuantized out;
  out.rows = rows;
  out.rows_padded = (rows + panel - 1) / panel * panel;
  out.columns = n;
  const GroupPlan plan = plan_for(factor, options);
  out.groups = plan.groups;
  const std::int64_t rows_padded = out.rows_padded, groups = out.groups;
  const std::int64_t gs = plan.group_size;
  const bool dynamic = !plan.precomputed;
  const std::int64_t block = options.block_size;
  out.codes = DeviceBuffer<std::uint8_t>(static_cast<std::size_t>(rows_padded * n));
  out.scales = DeviceBuffer<float>(static_cast<std::size_t>(rows_padded * groups));
  out.zeros = DeviceBuffer<std::int32_t>(static_cast<std::size_t>(rows_padded * groups));
  if (rows_padded == 0) return out;

  DeviceBuffer<std::int32_t> gop(static_cast<std::size_t>(n));
  gop.upload(plan.group_of_position.data(), plan.group_of_position.size(), stream);

  const std::int64_t ld_err = std::min(block, n);
  DeviceBuffer<float> w(static_cast<std::size_t>(rows_padded * n));
  DeviceBuffer<float> err(static_cast<std::size_t>(rows_padded * ld_err));
  const bool snapshot =
      dynamic && options.group_rule == GroupScaleRule::Reference && ld_err > kMaxBatch;
  DeviceBuffer<float> start(snapshot ? static_cast<std::size_t>(rows_padded * ld_err) : 0);
  const std::int64_t ld_scratch = std::min(gs, n);
  DeviceBuffer<float> scratch(dynamic ? static_cast<std::size_t>(rows_padded * ld_scratch) : 0);

  const kernels::QuantArgs qa = quant_args(qc);
  s.input_error.reset(stream);
  s.scale_error.reset(stream);
  QSHARD_CUDA_CHECK(kernels::prepare_weights(weight, rows, rows_padded, n,
                                             factor.perm_device.data(), factor.dead_device.data(),
                                             w.data(), s.input_error.data(), stream));
  if (!dynamic) {
    QSHARD_CUDA_CHECK(kernels::static_group_params(
        weight, rows, rows_padded, n, factor.dead_device.data(), gs, groups, qa, out.scales.data(),
        out.zeros.data(), s.scale_error.data(), stream));
  }

  kernels::BatchArgs args{};
  args.w = w.data();
  args.n = n;
  args.u = factor.hinv_upper.data();
  args.err = err.data();
  args.ld_err = ld_err;
  args.group_of_position = gop.data();
  args.perm = factor.perm_device.data();
  args.codes = out.codes.data();
  args.scales = out.scales.data();
  args.zeros = out.zeros.data();
  args.groups = groups;
  args.scratch = scratch.data();
  args.ld_scratch = ld_scratch;
  args.group_size = gs;
  args.dynamic_groups = dynamic;
  args.exact_rule = options.group_rule == GroupScaleRule::Exact;
  args.qa = qa;
  args.flag = s.scale_error.data();

  const float minus_one = -1.0f, one = 1.0f;
  const auto batches = static_cast<int>(rows_padded / panel);
  // W[:, c0:c1) -= Err[:, e0:e0+k) @ U[u0:u0+k, c0:c1) on every panel of rows. Column-major view:
  // W^T (n x rows, ld n) -= U^T-block (m x k, ld n) * Err^T (k x panel, ld ld_err).
  const auto update = [&](std::int64_t c0, std::int64_t c1, std::int64_t e0, std::int64_t u0,
                          std::int64_t k) {
    QSHARD_CUDA_CHECK(cublasSgemmStridedBatched(
        s.cublas.get(), CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(c1 - c0),
        static_cast<int>(panel), static_cast<int>(k), &minus_one,
        factor.hinv_upper.data() + u0 * n + c0, static_cast<int>(n), 0, err.data() + e0,
        static_cast<int>(ld_err), panel * ld_err, &one, w.data() + c0, static_cast<int>(n),
        panel * n, batches));
  };

  for (std::int64_t outer = 0; outer < n; outer += block) {
    const std::int64_t outer_end = std::min(n, outer + block);
    args.outer_begin = outer;
    args.outer_end = outer_end;
    if (snapshot) {
      QSHARD_CUDA_CHECK(cudaMemcpy2DAsync(
          start.data(), static_cast<std::size_t>(ld_err) * sizeof(float), w.data() + outer,
          static_cast<std::size_t>(n) * sizeof(float),
          static_cast<std::size_t>(outer_end - outer) * sizeof(float),
          static_cast<std::size_t>(rows_padded), cudaMemcpyDeviceToDevice, stream));
      args.ref = start.data();
      args.ld_ref = ld_err;
    } else {
      args.ref = w.data() + outer;
      args.ld_ref = n;
    }
    for (std::int64_t i1 = outer; i1 < outer_end; i1 += kMaxBatch) {
      const std::int64_t i2 = std::min(outer_end, i1 + kMaxBatch);
      args.i1 = i1;
      args.i2 = i2;
      QSHARD_CUDA_CHECK(kernels::gptq_batch(args, rows_padded, stream));
      if (i2 < outer_end) update(i2, outer_end, i1 - outer, i1, i2 - i1);
    }
    if (outer_end < n) update(outer_end, n, 0, outer, outer_end - outer);
  }

  if (const std::uint64_t bad = s.input_error.fetch(stream); bad != kNoError) {
    float value = 0.0f;
    QSHARD_CUDA_CHECK(cudaMemcpy(&value, weight + bad, sizeof(float), cudaMemcpyDeviceToHost));
    throw Error(str("weight has a non-finite value ", value, " at (", bad / n, ", ", bad % n, ")"));
  }
  if (const std::uint64_t bad = s.scale_error.fetch(stream); bad != kNoError) {
    throw Error(str("quantization scale of row ", bad,
                    " overflows fp16 or its group is not finite (weights beyond +-65504 * maxq)"));
  }
  return out;
}

double CudaSolver::objective(const MatrixF& weight, const MatrixF& quantized,
                             const MatrixD& hessian) const {
  check_objective_shapes(weight, quantized, hessian);
  const std::int64_t rows = weight.rows(), n = weight.cols();
  if (rows == 0 || n == 0) return 0.0;
  State& s = *state_;
  const DeviceGuard guard(s.device);
  const std::lock_guard lock(s.mutex);
  const cudaStream_t stream = s.stream.get();
  const DeviceBuffer<double>& h = s.device_hessian(hessian);
  s.objective_w.reserve(weight.size());
  s.objective_q.reserve(weight.size());
  s.objective_d.reserve(weight.size());
  s.objective_dh.reserve(weight.size());
  s.objective_out.reserve(1);
  s.objective_w.upload(weight.data(), weight.size(), stream);
  s.objective_q.upload(quantized.data(), quantized.size(), stream);
  QSHARD_CUDA_CHECK(kernels::difference(s.objective_w.data(), s.objective_q.data(), weight.size(),
                                        s.objective_d.data(), stream));
  // Row-major D [rows, n] is column-major D^T; (D H)^T = H D^T as H is symmetric.
  const double one = 1.0, zero = 0.0;
  const auto ni = static_cast<int>(n);
  QSHARD_CUDA_CHECK(cublasDgemm(s.cublas.get(), CUBLAS_OP_N, CUBLAS_OP_N, ni,
                                static_cast<int>(rows), ni, &one, h.data(), ni,
                                s.objective_d.data(), ni, &zero, s.objective_dh.data(), ni));
  double total = 0.0;
  QSHARD_CUDA_CHECK(cublasDdot(s.cublas.get(), static_cast<int>(weight.size()),
                               s.objective_d.data(), 1, s.objective_dh.data(), 1, &total));
  s.stream.synchronize();
  return total;
}

std::vector<std::int32_t> CudaSolver::g_idx(const DeviceFactor& factor,
                                            const GptqOptions& options) const {
  return plan_for(factor, options).g_idx;
}

QuantizedWeight CudaSolver::download(const DeviceQuantized& result, const DeviceFactor& factor,
                                     const GptqOptions& options) const {
  const QuantConfig& qc = options.quant;
  const std::int64_t n = result.columns, rows = result.rows, groups = result.groups;
  State& s = *state_;
  const DeviceGuard guard(s.device);
  const std::lock_guard lock(s.mutex);
  const cudaStream_t stream = s.stream.get();
  QuantizedWeight q;
  q.bits = qc.bits;
  q.group_size = qc.group_size;
  q.codes = Matrix<std::uint8_t>(rows, n);
  q.scales = MatrixF(rows, groups);
  q.zeros = Matrix<std::int32_t>(rows, groups);
  q.g_idx = plan_for(factor, options).g_idx;
  result.codes.download(q.codes.data(), q.codes.size(), stream);
  result.scales.download(q.scales.data(), q.scales.size(), stream);
  result.zeros.download(q.zeros.data(), q.zeros.size(), stream);
  s.stream.synchronize();
  return q;
}

QuantizedWeight CudaSolver::solve(const MatrixF& weight, const HessianFactor& factor,
                                  const GptqOptions& options) const {
  options.validate();
  require(weight.cols() == factor.columns, "solve: weight has ", weight.cols(),
          " columns, the factorisation ", factor.columns);
  const DeviceGuard guard(state_->device);  // buffers below are freed on their device
  std::shared_ptr<const DeviceFactor> f;
  {
    const std::lock_guard lock(state_->mutex);
    f = state_->lookup(factor);
  }
  if (!f) {
    f = upload_factor(factor);
    const std::lock_guard lock(state_->mutex);
    state_->remember(factor, f);
  }
  DeviceBuffer<float> w(weight.size());
  {
    const std::lock_guard lock(state_->mutex);
    w.upload(weight.data(), weight.size(), state_->stream.get());
  }
  const DeviceQuantized result = solve_resident(w.data(), weight.rows(), *f, options);
  return download(result, *f, options);
}

}  // namespace qshard::cuda
