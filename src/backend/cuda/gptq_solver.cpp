// The CUDA GPTQ solver, host side: factorisation with cuSOLVER (fp64), the blocked solve with the
// fused batch kernel and cuBLAS SGEMM trailing updates (fp32), RTN and objectives. The
// semantics are the CPU solver's (backend/cpu/gptq_solver.cpp, quant/gptq_plan.cpp); see
// backend/cuda/cuda_solver.hpp for the design.
#include <algorithm>
#include <cmath>
#include <mutex>
#include <numeric>

#include "cuda_solver.hpp"
#include "gptq_kernels.hpp"
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

// Rows of one objective GEMM call: fixed, so each row's value never depends on the other rows.
constexpr std::int64_t kObjectiveRows = 1024;

}  // namespace

struct CudaSolver::State {
  State(int device_, CudaSolverOptions options_)
      : device(device_), options(options_), cublas(stream.get()), cusolver(stream.get()) {
    QSHARD_CUDA_CHECK(kernels::configure_batch_kernel());
  }

  const int device;
  const CudaSolverOptions options;
  std::mutex mutex;
  Stream stream;
  CublasHandle cublas;
  CusolverHandle cusolver;
  CusolverParams params;
  ErrorIndex input_error, scale_error;
  DeviceBuffer<float> objective_w, objective_q;
  DeviceBuffer<double> objective_d, objective_dh, objective_out;
};

DeviceHessian::DeviceHessian(int device, std::int64_t n, DeviceBuffer<double> values)
    : device_(device), n_(n), values_(std::move(values)) {
  require(values_.size() == static_cast<std::size_t>(n * n), "DeviceHessian: ", values_.size(),
          " values for ", n, " x ", n);
}

DeviceHessian::~DeviceHessian() {
  const DeviceGuard guard(device_);
  values_ = DeviceBuffer<double>();
}

MatrixD DeviceHessian::to_host() const {
  const DeviceGuard guard(device_);
  MatrixD h(n_, n_);
  QSHARD_CUDA_CHECK(
      cudaMemcpy(h.data(), values_.data(), h.size() * sizeof(double), cudaMemcpyDeviceToHost));
  return h;
}

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
const CudaSolverOptions& CudaSolver::solver_options() const { return state_->options; }
cudaStream_t CudaSolver::stream() const { return state_->stream.get(); }

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

  auto f = std::make_shared<DeviceFactor>();
  f->device = s.device;
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

  // One attempt at absolute damping lambda (the shared preparation in quant/gptq_plan.cpp decides
  // the permutation, dead inputs and damping steps).
  const auto attempt = [&](double lambda) {
    if (f->perm_device.empty()) {
      f->perm_device = DeviceBuffer<std::int32_t>(static_cast<std::size_t>(n));
      f->perm_device.upload(f->perm.data(), f->perm.size(), stream);
      f->dead_device = DeviceBuffer<std::uint8_t>(static_cast<std::size_t>(n));
      f->dead_device.upload(f->dead.data(), f->dead.size(), stream);
      uploaded.record(stream);
    }
    QSHARD_CUDA_CHECK(kernels::gather_reversed(h.data(), n, f->perm_device.data(),
                                               f->dead_device.data(), lambda, a.data(), stream));
    QSHARD_CUDA_CHECK(cusolverDnXpotrf(s.cusolver.get(), s.params.get(), CUBLAS_FILL_MODE_LOWER, n,
                                       CUDA_R_64F, a.data(), n, CUDA_R_64F, work_device.data(),
                                       potrf_device, work_host.data(), potrf_host,
                                       info_device.data()));
    int info = 0;
    info_device.download(&info, 1, stream);
    s.stream.synchronize();
    require(info >= 0, "cusolverDnXpotrf: invalid argument ", -info);
    if (info != 0) return false;
    QSHARD_CUDA_CHECK(cusolverDnXtrtri(
        s.cusolver.get(), CUBLAS_FILL_MODE_LOWER, CUBLAS_DIAG_NON_UNIT, n, CUDA_R_64F, a.data(), n,
        work_device.data(), trtri_device, work_host.data(), trtri_host, info_device.data()));
    info_device.download(&info, 1, stream);
    s.stream.synchronize();
    require(info >= 0, "cusolverDnXtrtri: invalid argument ", -info);
    if (info != 0) return false;
    s.input_error.reset(stream);
    QSHARD_CUDA_CHECK(kernels::check_diagonal(a.data(), n, s.input_error.data(), stream));
    return s.input_error.fetch(stream) == kNoError;
  };
  prepare_and_factorize(diagonal, options, *f, attempt);

  f->hinv_upper = DeviceBuffer<float>(nn);
  // The double U goes where H was (H is no longer needed).
  QSHARD_CUDA_CHECK(kernels::scatter_reversed(
      a.data(), n, host_factor != nullptr ? h.data() : nullptr, f->hinv_upper.data(), stream));
  factored.record(stream);
  if (host_factor != nullptr) {
    static_cast<Factorization&>(*host_factor) = static_cast<const Factorization&>(*f);
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

std::shared_ptr<const Factorization> CudaSolver::factorize(const Hessian& hessian,
                                                           const GptqOptions& options) const {
  const auto* device_hessian = dynamic_cast<const DeviceHessian*>(&hessian);
  if (device_hessian != nullptr && device_hessian->device() == state_->device)
    return factorize_device(device_hessian->data(), hessian.features(), options);
  if (const MatrixD* h = hessian.host()) return factorize_device(*h, options);
  return factorize_device(hessian.to_host(), options);
}

HessianFactor CudaSolver::factorize_host(const MatrixD& hessian, const GptqOptions& options) const {
  const DeviceGuard guard(state_->device);
  HessianFactor f;
  (void)factorize_device(hessian, options, &f);
  return f;
}

std::shared_ptr<const DeviceFactor> CudaSolver::device_factor(const Factorization& factor) const {
  if (const auto* f = dynamic_cast<const DeviceFactor*>(&factor);
      f != nullptr && f->device == state_->device) {
    // Shares ownership only through the caller: wrap without taking it.
    return std::shared_ptr<const DeviceFactor>(std::shared_ptr<const DeviceFactor>(), f);
  }
  const auto* host = dynamic_cast<const HessianFactor*>(&factor);
  require(host != nullptr, "CUDA solver: the factorisation is on another device");
  return upload_factor(*host);
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
  static_cast<Factorization&>(*f) = static_cast<const Factorization&>(factor);
  f->device = s.device;
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
  const GroupPlan plan = plan_groups(factor, options);
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

DeviceQuantized CudaSolver::rtn_resident(const float* weight, std::int64_t rows,
                                         std::int64_t columns, const QuantConfig& config) const {
  config.validate();
  State& s = *state_;
  const DeviceGuard guard(s.device);
  const std::lock_guard lock(s.mutex);
  const cudaStream_t stream = s.stream.get();
  const std::int64_t panel = s.options.panel_rows, n = columns;
  DeviceQuantized out;
  out.rows = rows;
  out.rows_padded = (rows + panel - 1) / panel * panel;
  out.columns = n;
  out.groups = group_count(n, config.group_size);
  const std::int64_t gs = group_width(n, config.group_size);
  const auto padded = static_cast<std::size_t>(out.rows_padded);
  out.codes = DeviceBuffer<std::uint8_t>(padded * static_cast<std::size_t>(n));
  out.scales = DeviceBuffer<float>(padded * static_cast<std::size_t>(out.groups));
  out.zeros = DeviceBuffer<std::int32_t>(padded * static_cast<std::size_t>(out.groups));
  if (padded == 0) return out;
  s.scale_error.reset(stream);
  QSHARD_CUDA_CHECK(kernels::static_group_params(weight, rows, out.rows_padded, n, nullptr, gs,
                                                 out.groups, quant_args(config), out.scales.data(),
                                                 out.zeros.data(), s.scale_error.data(), stream));
  QSHARD_CUDA_CHECK(kernels::rtn_codes(weight, rows, out.rows_padded, n, gs, out.groups,
                                       config.maxq(), out.scales.data(), out.zeros.data(),
                                       out.codes.data(), stream));
  if (const std::uint64_t bad = s.scale_error.fetch(stream); bad != kNoError) {
    throw Error(str("quantization scale of row ", bad,
                    " overflows fp16 or its group is not finite (weights beyond +-65504 * maxq)"));
  }
  return out;
}

std::vector<double> CudaSolver::row_objectives(const float* weight, const DeviceQuantized& q,
                                               const std::int32_t* g_idx,
                                               const double* hessian) const {
  State& s = *state_;
  const DeviceGuard guard(s.device);
  const std::lock_guard lock(s.mutex);
  const cudaStream_t stream = s.stream.get();
  const std::int64_t n = q.columns, panel = s.options.panel_rows;
  std::vector<double> values(static_cast<std::size_t>(q.rows));
  if (q.rows == 0 || n == 0) return values;
  const auto chunk_elements = static_cast<std::size_t>(kObjectiveRows * n);
  s.objective_d.reserve(chunk_elements);
  s.objective_dh.reserve(chunk_elements);
  s.objective_out.reserve(static_cast<std::size_t>(kObjectiveRows));
  const double one = 1.0, zero = 0.0;
  const auto ni = static_cast<int>(n);
  for (std::int64_t r0 = 0; r0 < q.rows; r0 += kObjectiveRows) {
    const std::int64_t rows = std::min(kObjectiveRows, q.rows - r0);
    QSHARD_CUDA_CHECK(kernels::residual(weight + r0 * n, q.codes.data() + r0 * n,
                                        q.scales.data() + r0 * q.groups,
                                        q.zeros.data() + r0 * q.groups, g_idx, rows, kObjectiveRows,
                                        n, q.groups, s.objective_d.data(), stream));
    // Per panel of rows, column-major: (D H)^T = H D^T (H symmetric); always the same shapes.
    QSHARD_CUDA_CHECK(cublasDgemmStridedBatched(
        s.cublas.get(), CUBLAS_OP_N, CUBLAS_OP_N, ni, static_cast<int>(panel), ni, &one, hessian,
        ni, 0, s.objective_d.data(), ni, panel * n, &zero, s.objective_dh.data(), ni, panel * n,
        static_cast<int>(kObjectiveRows / panel)));
    QSHARD_CUDA_CHECK(kernels::row_dot(s.objective_d.data(), s.objective_dh.data(), rows, n,
                                       s.objective_out.data(), stream));
    s.objective_out.download(values.data() + r0, static_cast<std::size_t>(rows), stream);
  }
  s.stream.synchronize();
  return values;
}

double CudaSolver::objective(const MatrixF& weight, const MatrixF& quantized,
                             const Hessian& hessian) const {
  check_objective_shapes(weight, quantized, hessian.features());
  const std::int64_t rows = weight.rows(), n = weight.cols();
  if (rows == 0 || n == 0) return 0.0;
  State& s = *state_;
  const DeviceGuard guard(s.device);
  const std::lock_guard lock(s.mutex);
  DeviceBuffer<double> uploaded;
  const double* h = nullptr;
  if (const auto* d = dynamic_cast<const DeviceHessian*>(&hessian);
      d != nullptr && d->device() == s.device) {
    h = d->data();
  } else {
    const MatrixD host = hessian.host() != nullptr ? MatrixD() : hessian.to_host();
    const MatrixD& values = hessian.host() != nullptr ? *hessian.host() : host;
    uploaded = DeviceBuffer<double>(values.size());
    uploaded.upload(values.data(), values.size(), s.stream.get());
    h = uploaded.data();
  }
  const cudaStream_t stream = s.stream.get();
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
                                static_cast<int>(rows), ni, &one, h, ni, s.objective_d.data(), ni,
                                &zero, s.objective_dh.data(), ni));
  double total = 0.0;
  QSHARD_CUDA_CHECK(cublasDdot(s.cublas.get(), static_cast<int>(weight.size()),
                               s.objective_d.data(), 1, s.objective_dh.data(), 1, &total));
  s.stream.synchronize();
  return total;
}

std::vector<std::int32_t> CudaSolver::g_idx(const Factorization& factor,
                                            const GptqOptions& options) const {
  return plan_groups(factor, options).g_idx;
}

QuantizedWeight CudaSolver::download(const DeviceQuantized& result, const DeviceFactor& factor,
                                     const GptqOptions& options) const {
  const QuantConfig& qc = options.quant;
  const std::int64_t n = result.columns, rows = result.rows, groups = result.groups;
  State& s = *state_;
  const DeviceGuard guard(s.device);
  const std::lock_guard lock(s.mutex);
  const cudaStream_t stream = s.stream.get();
  QuantizedWeight q = QuantizedWeight::allocate(qc.bits, qc.group_size, rows, n, groups,
                                                plan_groups(factor, options).g_idx);
  result.codes.download(q.codes.data(), q.codes.size(), stream);
  result.scales.download(q.scales.data(), q.scales.size(), stream);
  result.zeros.download(q.zeros.data(), q.zeros.size(), stream);
  s.stream.synchronize();
  return q;
}

QuantizedWeight CudaSolver::solve(const MatrixF& weight, const Factorization& factor,
                                  const GptqOptions& options) const {
  options.validate();
  require(weight.cols() == factor.columns, "solve: weight has ", weight.cols(),
          " columns, the factorisation ", factor.columns);
  const DeviceGuard guard(state_->device);  // buffers below are freed on their device
  const std::shared_ptr<const DeviceFactor> f = device_factor(factor);
  DeviceBuffer<float> w(weight.size());
  {
    const std::lock_guard lock(state_->mutex);
    w.upload(weight.data(), weight.size(), state_->stream.get());
  }
  const DeviceQuantized result = solve_resident(w.data(), weight.rows(), *f, options);
  return download(result, *f, options);
}

}  // namespace qshard::cuda
