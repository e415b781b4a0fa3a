// Checked CUDA calls and the RAII wrappers of backend/cuda/device.hpp.
#include "device.hpp"

#include <limits>

#include "qshard/backend/cuda_backend.hpp"

namespace qshard::cuda {
namespace {

const char* cublas_status_name(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR:
      return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "unknown cuBLAS status";
}

const char* cusolver_status_name(cusolverStatus_t status) {
  switch (status) {
    case CUSOLVER_STATUS_SUCCESS:
      return "CUSOLVER_STATUS_SUCCESS";
    case CUSOLVER_STATUS_NOT_INITIALIZED:
      return "CUSOLVER_STATUS_NOT_INITIALIZED";
    case CUSOLVER_STATUS_ALLOC_FAILED:
      return "CUSOLVER_STATUS_ALLOC_FAILED";
    case CUSOLVER_STATUS_INVALID_VALUE:
      return "CUSOLVER_STATUS_INVALID_VALUE";
    case CUSOLVER_STATUS_ARCH_MISMATCH:
      return "CUSOLVER_STATUS_ARCH_MISMATCH";
    case CUSOLVER_STATUS_EXECUTION_FAILED:
      return "CUSOLVER_STATUS_EXECUTION_FAILED";
    case CUSOLVER_STATUS_INTERNAL_ERROR:
      return "CUSOLVER_STATUS_INTERNAL_ERROR";
    case CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED:
      return "CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED";
    case CUSOLVER_STATUS_NOT_SUPPORTED:
      return "CUSOLVER_STATUS_NOT_SUPPORTED";
    default:
      break;
  }
  return "cuSOLVER status";
}

}  // namespace

void check(cudaError_t status, const char* call) {
  if (status == cudaSuccess) return;
  (void)cudaGetLastError();  // clear a non-sticky error so later calls are not blamed for it
  throw Error(
      str(call, " failed: ", cudaGetErrorString(status), " (", cudaGetErrorName(status), ")"));
}

void check(cublasStatus_t status, const char* call) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw Error(
      str(call, " failed: ", cublas_status_name(status), " (", static_cast<int>(status), ")"));
}

void check(cusolverStatus_t status, const char* call) {
  if (status == CUSOLVER_STATUS_SUCCESS) return;
  throw Error(
      str(call, " failed: ", cusolver_status_name(status), " (", static_cast<int>(status), ")"));
}

void check_launch(const char* kernel) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess)
    throw Error(str("launch of kernel ", kernel, " failed: ", cudaGetErrorString(status)));
}

int device_count() noexcept {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return count;
}

namespace {
// Whether `device` has stream-ordered pools (some virtualised or older setups do not: they get
// plain cudaMalloc/cudaFree, the same for an allocation and its free).
bool has_memory_pools(int device) {
  int supported = 0;
  if (cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, device) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return supported != 0;
}
}  // namespace

void* allocate_device(std::size_t bytes) {
  void* p = nullptr;
  int current = 0;
  QSHARD_CUDA_CHECK(cudaGetDevice(&current));
  if (!has_memory_pools(current)) {
    const cudaError_t status = cudaMalloc(&p, bytes);
    if (status != cudaSuccess) {
      (void)cudaGetLastError();
      throw Error(str("cudaMalloc of ", bytes, " bytes failed: ", cudaGetErrorString(status)));
    }
    return p;
  }
  cudaError_t status = cudaMallocAsync(&p, bytes, cudaStreamPerThread);
  if (status == cudaErrorMemoryAllocation) {
    // The pool may hold freed blocks too fragmented for this size: give them back and retry.
    (void)cudaGetLastError();
    int device = 0;
    cudaMemPool_t pool = nullptr;
    if (cudaGetDevice(&device) == cudaSuccess &&
        cudaDeviceGetDefaultMemPool(&pool, device) == cudaSuccess) {
      (void)cudaStreamSynchronize(cudaStreamPerThread);
      (void)cudaMemPoolTrimTo(pool, 0);
    }
    status = cudaMallocAsync(&p, bytes, cudaStreamPerThread);
  }
  if (status == cudaSuccess) status = cudaStreamSynchronize(cudaStreamPerThread);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    throw Error(str("device allocation of ", bytes, " bytes failed: ", cudaGetErrorString(status),
                    " (", available_device_memory(), " bytes available)"));
  }
  return p;
}

void free_device(void* pointer) noexcept {
  // On the pointer's device (a thread may free another device's memory, as cudaFree allows).
  cudaPointerAttributes attributes{};
  int current = 0;
  const bool known = cudaPointerGetAttributes(&attributes, pointer) == cudaSuccess &&
                     cudaGetDevice(&current) == cudaSuccess;
  if (!known || !has_memory_pools(attributes.device)) {
    if (!known) (void)cudaGetLastError();
    (void)cudaFree(pointer);
    return;
  }
  const bool switched =
      attributes.device != current && cudaSetDevice(attributes.device) == cudaSuccess;
  // As cudaFree: nothing may still use the memory when it goes back to the pool.
  const cudaError_t synced = cudaDeviceSynchronize();
  const cudaError_t freed = cudaFreeAsync(pointer, cudaStreamPerThread);
  if (switched) (void)cudaSetDevice(current);
  if (synced != cudaSuccess || freed != cudaSuccess) (void)cudaGetLastError();
}

void keep_freed_device_memory(int device) {
  if (!has_memory_pools(device)) return;
  cudaMemPool_t pool = nullptr;
  QSHARD_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
  std::uint64_t keep = std::numeric_limits<std::uint64_t>::max();
  QSHARD_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
}

std::size_t available_device_memory() {
  std::size_t free_bytes = 0, total_bytes = 0;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  int device = 0;
  cudaMemPool_t pool = nullptr;
  std::uint64_t reserved = 0, used = 0;
  if (cudaGetDevice(&device) != cudaSuccess || !has_memory_pools(device)) return free_bytes;
  if (cudaDeviceGetDefaultMemPool(&pool, device) == cudaSuccess &&
      cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &reserved) == cudaSuccess &&
      cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &used) == cudaSuccess) {
    if (reserved > used) free_bytes += static_cast<std::size_t>(reserved - used);
  } else {
    (void)cudaGetLastError();
  }
  return free_bytes;
}

DeviceGuard::DeviceGuard(int device) {
  const int count = device_count();
  require(device >= 0 && device < count, "CUDA device ", device, " requested but ", count,
          " visible");
  QSHARD_CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != device) {
    QSHARD_CUDA_CHECK(cudaSetDevice(device));
    restore_ = true;
  }
}

DeviceGuard::~DeviceGuard() {
  if (restore_) (void)cudaSetDevice(previous_);
}

Stream::Stream() { QSHARD_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
Stream::~Stream() {
  if (stream_ != nullptr) (void)cudaStreamDestroy(stream_);
}
void Stream::synchronize() const { QSHARD_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

Event::Event() { QSHARD_CUDA_CHECK(cudaEventCreate(&event_)); }
Event::~Event() {
  if (event_ != nullptr) (void)cudaEventDestroy(event_);
}
void Event::record(cudaStream_t stream) const {
  QSHARD_CUDA_CHECK(cudaEventRecord(event_, stream));
}
void Event::synchronize() const { QSHARD_CUDA_CHECK(cudaEventSynchronize(event_)); }
float Event::elapsed_ms_since(const Event& start) const {
  float ms = 0.0f;
  QSHARD_CUDA_CHECK(cudaEventElapsedTime(&ms, start.event_, event_));
  return ms;
}

CublasHandle::CublasHandle(cudaStream_t stream) {
  QSHARD_CUDA_CHECK(cublasCreate(&handle_));
  try {
    QSHARD_CUDA_CHECK(cublasSetStream(handle_, stream));
    QSHARD_CUDA_CHECK(cublasSetMathMode(handle_, CUBLAS_DEFAULT_MATH));
    QSHARD_CUDA_CHECK(cublasSetAtomicsMode(handle_, CUBLAS_ATOMICS_NOT_ALLOWED));
  } catch (...) {
    (void)cublasDestroy(handle_);
    throw;
  }
}
CublasHandle::~CublasHandle() {
  if (handle_ != nullptr) (void)cublasDestroy(handle_);
}

CusolverHandle::CusolverHandle(cudaStream_t stream) {
  QSHARD_CUDA_CHECK(cusolverDnCreate(&handle_));
  try {
    QSHARD_CUDA_CHECK(cusolverDnSetStream(handle_, stream));
  } catch (...) {
    (void)cusolverDnDestroy(handle_);
    throw;
  }
}
CusolverHandle::~CusolverHandle() {
  if (handle_ != nullptr) (void)cusolverDnDestroy(handle_);
}

CusolverParams::CusolverParams() { QSHARD_CUDA_CHECK(cusolverDnCreateParams(&params_)); }
CusolverParams::~CusolverParams() {
  if (params_ != nullptr) (void)cusolverDnDestroyParams(params_);
}

void ErrorIndex::reset(cudaStream_t stream) {
  QSHARD_CUDA_CHECK(cudaMemsetAsync(flag_.data(), 0xff, sizeof(unsigned long long), stream));
}

std::uint64_t ErrorIndex::fetch(cudaStream_t stream) const {
  unsigned long long value = 0;
  QSHARD_CUDA_CHECK(
      cudaMemcpyAsync(&value, flag_.data(), sizeof(value), cudaMemcpyDeviceToHost, stream));
  QSHARD_CUDA_CHECK(cudaStreamSynchronize(stream));
  return value;
}

}  // namespace qshard::cuda

namespace qshard {

int cuda_device_count() { return cuda::device_count(); }

}  // namespace qshard
