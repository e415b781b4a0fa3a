// The CUDA Hessian builder, host side (see backend/cuda/cuda_hessian.hpp).
#include "cuda_hessian.hpp"
#include "cuda_solver.hpp"

#include <mutex>
#include <utility>
#include <vector>

#include "device.hpp"
#include "forward_kernels.hpp"
#include "hessian_kernels.hpp"
#include "nccl_communicator.hpp"

namespace qshard::cuda {
namespace {
constexpr std::uint64_t kNoError = ~std::uint64_t{0};
}  // namespace

struct CudaHessianBuilder::State {
  State(int device_, std::int64_t features_, HessianPrecision precision_)
      : device(device_),
        features(features_),
        precision(precision_),
        packed(kernels::packed_count(features_)),
        cublas(stream.get()),
        limbs(2 * packed + 1),
        product(static_cast<std::size_t>(features_) * static_cast<std::size_t>(features_)) {
    limbs.fill_zero(stream.get());
    error.reset(stream.get());
  }

  std::int64_t* high() { return limbs.data(); }

  // Enqueues X^T X of x = [tokens, features] (device, `dtype`) into the limbs on `stream`.
  void enqueue(const void* x, DType dtype, std::int64_t count_tokens) {
    require(count_tokens >= 0, "CudaHessianBuilder: negative token count ", count_tokens);
    require(count_tokens <= 0x7fffffff, "CudaHessianBuilder: unit of ", count_tokens,
            " tokens is too large");
    require(dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16,
            "CudaHessianBuilder: activations of dtype ", dtype_name(dtype));
    tokens += count_tokens;
    if (count_tokens == 0) return;
    const cudaStream_t s = stream.get();
    timing.emplace_back(std::make_unique<Event>(), std::make_unique<Event>());
    timing.back().first->record(s);
    const auto f = static_cast<int>(features);
    const std::size_t count = static_cast<std::size_t>(count_tokens) * static_cast<std::size_t>(f);
    const float one = 1.0f, zero = 0.0f;
    // The GEMM's input type: bf16 (tensor cores) or fp32 (checks); others are converted first.
    const DType gemm_type = precision == HessianPrecision::Bf16 ? DType::BF16 : DType::F32;
    const void* input = x;
    if (dtype != gemm_type) {
      if (gemm_type == DType::BF16) {
        x_bf16.reserve(count);
        input = x_bf16.data();
      } else {
        upload.reserve(count);
        input = upload.data();
      }
      QSHARD_CUDA_CHECK(kernels::convert(x, dtype, const_cast<void*>(input), gemm_type, count, s));
    }
    const cudaDataType type = gemm_type == DType::BF16 ? CUDA_R_16BF : CUDA_R_32F;
    // Row-major X [tokens, f] is column-major X^T (f x tokens, ld f): C = X^T (X^T)^T = X^T X.
    QSHARD_CUDA_CHECK(cublasGemmEx(cublas.get(), CUBLAS_OP_N, CUBLAS_OP_T, f, f,
                                   static_cast<int>(count_tokens), &one, input, type, f, input,
                                   type, f, &zero, product.data(), CUDA_R_32F, f,
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    QSHARD_CUDA_CHECK(
        kernels::accumulate_limbs(product.data(), features, high(), low(), error.data(), s));
    timing.back().second->record(s);
  }
  std::int64_t* low() { return limbs.data() + packed; }

  // Throws for a non-finite partial reported by an earlier unit (synchronises).
  // Sums the limbs of every rank through the host communicator: all-reduced (owner < 0) or
  // reduced to `owner` only. Holds no lock (the caller does).
  void host_sum(Communicator& comm, int owner);

  void check_finite() const {
    const std::uint64_t bad = error.fetch(stream.get());
    if (bad != kNoError) {
      const auto f = static_cast<std::uint64_t>(features);
      throw Error(str("Hessian accumulation: non-finite value at (", bad % f, ", ", bad / f,
                      ") of a calibration unit's X^T X (non-finite or huge activations)"));
    }
  }

  const int device;
  const std::int64_t features;
  const HessianPrecision precision;
  const std::size_t packed;
  std::mutex mutex;
  Stream stream;
  CublasHandle cublas;
  mutable ErrorIndex error;
  DeviceBuffer<std::int64_t> limbs;  // [packed high][packed low][token count slot]
  DeviceBuffer<float> product;       // X^T X of the current unit, column-major
  DeviceBuffer<float> upload;        // X of a host unit
  DeviceBuffer<std::uint16_t> x_bf16;
  Event ready;     // the producer's input is complete
  Event consumed;  // this builder has read the producer's input
  std::vector<std::pair<std::unique_ptr<Event>, std::unique_ptr<Event>>> timing;  // per unit
  std::int64_t tokens = 0;
};

CudaHessianBuilder::CudaHessianBuilder(int device, std::int64_t features,
                                       HessianPrecision precision) {
  require(features > 0 && features <= 65535,
          "CudaHessianBuilder: features must be in [1, 65535] (got ", features, ")");
  const DeviceGuard guard(device);
  state_ = std::make_unique<State>(device, features, precision);
}

CudaHessianBuilder::~CudaHessianBuilder() {
  int previous = 0;
  const bool switched = cudaGetDevice(&previous) == cudaSuccess && previous != state_->device &&
                        cudaSetDevice(state_->device) == cudaSuccess;
  state_.reset();
  if (switched) (void)cudaSetDevice(previous);
}

std::int64_t CudaHessianBuilder::features() const { return state_->features; }
std::int64_t CudaHessianBuilder::tokens() const { return state_->tokens; }
cudaStream_t CudaHessianBuilder::stream() const { return state_->stream.get(); }
int CudaHessianBuilder::device() const { return state_->device; }

void CudaHessianBuilder::add(const MatrixF& x) {
  State& s = *state_;
  require(x.cols() == s.features, "HessianAccumulator: unit has ", x.cols(), " features, expected ",
          s.features);
  const DeviceGuard guard(s.device);
  {
    const std::lock_guard lock(s.mutex);
    s.upload.reserve(x.size());
    // From pageable memory this returns once x is staged: x may change after add() returns.
    s.upload.upload(x.data(), x.size(), s.stream.get());
  }
  add_device(s.upload.data(), x.rows());
}

void CudaHessianBuilder::add_device(const float* x, std::int64_t tokens) {
  State& s = *state_;
  const DeviceGuard guard(s.device);
  const std::lock_guard lock(s.mutex);
  s.enqueue(x, DType::F32, tokens);
}

void CudaHessianBuilder::add_device(const void* x, DType dtype, std::int64_t tokens,
                                    cudaStream_t producer) {
  State& s = *state_;
  const DeviceGuard guard(s.device);
  const std::lock_guard lock(s.mutex);
  s.ready.record(producer);
  QSHARD_CUDA_CHECK(cudaStreamWaitEvent(s.stream.get(), s.ready.get(), 0));
  s.enqueue(x, dtype, tokens);
  s.consumed.record(s.stream.get());
  QSHARD_CUDA_CHECK(cudaStreamWaitEvent(producer, s.consumed.get(), 0));
}

void CudaHessianBuilder::all_reduce(Communicator& comm) {
  State& s = *state_;
  const DeviceGuard guard(s.device);
  const std::lock_guard lock(s.mutex);
  const cudaStream_t stream = s.stream.get();
  s.check_finite();
  if (auto* nccl = dynamic_cast<NcclCommunicator*>(&comm)) {
    require(nccl->device() == s.device, "all_reduce: NCCL communicator of device ", nccl->device(),
            " for a Hessian on device ", s.device);
    s.limbs.upload(&s.tokens, 1, stream, 2 * s.packed);
    nccl->all_reduce_sum_device(s.limbs.data(), s.limbs.size(), stream);
    s.limbs.download(&s.tokens, 1, stream, 2 * s.packed);
    s.stream.synchronize();
    nccl->check_async();
    return;
  }
  if (comm.size() == 1) return;
  s.host_sum(comm, -1);
}

void CudaHessianBuilder::reduce_to(Communicator& comm, int owner) {
  if (dynamic_cast<NcclCommunicator*>(&comm) != nullptr || comm.size() == 1) {
    all_reduce(comm);  // NCCL: one all-reduce on the device limbs
    return;
  }
  State& s = *state_;
  const DeviceGuard guard(s.device);
  const std::lock_guard lock(s.mutex);
  s.check_finite();
  s.host_sum(comm, owner);
}

void CudaHessianBuilder::State::host_sum(Communicator& comm, int owner) {
  const cudaStream_t s = stream.get();
  // The packed limbs and the token count (the buffer's last slot), summed as integers: every rank
  // of a job runs the same backend, so the device layout travels as it is (half of the square).
  std::vector<std::int64_t> values(limbs.size());
  limbs.upload(&tokens, 1, s, 2 * packed);
  limbs.download(values.data(), values.size(), s);
  stream.synchronize();
  if (owner < 0) {
    comm.all_reduce_sum(values);
  } else {
    comm.reduce_sum(values, owner);
    if (comm.rank() != owner) return;  // the sum is the owner's alone
  }
  limbs.upload(values.data(), values.size(), s);
  tokens = values.back();
  stream.synchronize();
}

double CudaHessianBuilder::add_seconds() const {
  State& s = *state_;
  const DeviceGuard guard(s.device);
  const std::lock_guard lock(s.mutex);
  double ms = 0.0;
  for (const auto& [start, stop] : s.timing) {
    stop->synchronize();
    ms += stop->elapsed_ms_since(*start);
  }
  return ms / 1000.0;
}

MatrixD CudaHessianBuilder::sum() const {
  State& s = *state_;
  const DeviceGuard guard(s.device);
  const std::lock_guard lock(s.mutex);
  s.check_finite();
  const std::int64_t f = s.features;
  DeviceBuffer<double> out(static_cast<std::size_t>(f) * static_cast<std::size_t>(f));
  QSHARD_CUDA_CHECK(kernels::expand_limbs(s.high(), s.low(), f, 1.0, out.data(), s.stream.get()));
  MatrixD h(f, f);
  out.download(h.data(), h.size(), s.stream.get());
  s.stream.synchronize();
  return h;
}

DeviceBuffer<double> CudaHessianBuilder::hessian_device() const {
  State& s = *state_;
  require(s.tokens > 0, "Hessian requested before any calibration token was added");
  const DeviceGuard guard(s.device);
  const std::lock_guard lock(s.mutex);
  s.check_finite();
  const std::int64_t f = s.features;
  DeviceBuffer<double> out(static_cast<std::size_t>(f) * static_cast<std::size_t>(f));
  QSHARD_CUDA_CHECK(kernels::expand_limbs(s.high(), s.low(), f, 2.0 / static_cast<double>(s.tokens),
                                          out.data(), s.stream.get()));
  s.stream.synchronize();
  return out;
}

std::shared_ptr<const Hessian> CudaHessianBuilder::reduced() const {
  return std::make_shared<DeviceHessian>(state_->device, state_->features, hessian_device());
}

}  // namespace qshard::cuda
