#pragma once
// RAII for the CUDA objects the backend uses (device memory, streams, events, cuBLAS and cuSOLVER
// handles) and checked calls: every failing CUDA/cuBLAS/cuSOLVER call throws qshard::Error naming
// the call and the library's description of the status.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cusolverDn.h>

#include <cstddef>
#include <cstdint>
#include <utility>

#include "qshard/core/error.hpp"

namespace qshard::cuda {

// Throw qshard::Error("<call> failed: <reason>") unless the status is success.
void check(cudaError_t status, const char* call);
void check(cublasStatus_t status, const char* call);
void check(cusolverStatus_t status, const char* call);

}  // namespace qshard::cuda

// Checks a CUDA, cuBLAS or cuSOLVER call, naming it (the expression text) in the error.
#define QSHARD_CUDA_CHECK(call) ::qshard::cuda::check((call), #call)

namespace qshard::cuda {

// Number of visible devices; 0 without a driver or GPU (never throws).
int device_count() noexcept;

// Makes `device` current for its lifetime and restores the previous device afterwards.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool restore_ = false;
};

// Device memory comes from the current device's default stream-ordered pool (cudaMallocAsync)
// with cudaFree's semantics kept: an allocation is usable by every stream when it returns, and a
// free waits for the device first, so no stream can still be using the memory. What the pool adds:
// freed memory stays mapped for the next allocation (after keep_freed_device_memory) instead of
// being unmapped and mapped again every layer.
void* allocate_device(std::size_t bytes);
void free_device(void* pointer) noexcept;
// Raises the release threshold of `device`'s default pool: freed memory is kept for reuse.
void keep_freed_device_memory(int device);
// Bytes an allocation on the current device can still get: the driver's free memory plus what the
// default pool holds unused.
std::size_t available_device_memory();

// `count` elements of T in device memory of the current device (uninitialised). Move-only.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t count) : count_(count) {
    if (count > 0) data_ = static_cast<T*>(allocate_device(count * sizeof(T)));
  }
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), count_(std::exchange(other.count_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      reset();
      data_ = std::exchange(other.data_, nullptr);
      count_ = std::exchange(other.count_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* data() { return data_; }
  const T* data() const { return data_; }
  std::size_t size() const { return count_; }
  std::size_t bytes() const { return count_ * sizeof(T); }
  bool empty() const { return count_ == 0; }

  // Grows (never shrinks) to at least `count` elements; the contents are lost when it grows.
  void reserve(std::size_t count) {
    if (count > count_) *this = DeviceBuffer(count);
  }

  // Stream-ordered copies; the host side must stay valid until the stream reaches them.
  void upload(const T* host, std::size_t count, cudaStream_t stream, std::size_t offset = 0) {
    require(offset + count <= count_, "DeviceBuffer::upload: ", count, " elements at ", offset,
            " beyond ", count_);
    if (count > 0)
      QSHARD_CUDA_CHECK(
          cudaMemcpyAsync(data_ + offset, host, count * sizeof(T), cudaMemcpyHostToDevice, stream));
  }
  void download(T* host, std::size_t count, cudaStream_t stream, std::size_t offset = 0) const {
    require(offset + count <= count_, "DeviceBuffer::download: ", count, " elements at ", offset,
            " beyond ", count_);
    if (count > 0)
      QSHARD_CUDA_CHECK(
          cudaMemcpyAsync(host, data_ + offset, count * sizeof(T), cudaMemcpyDeviceToHost, stream));
  }
  void fill_zero(cudaStream_t stream) {
    if (count_ > 0) QSHARD_CUDA_CHECK(cudaMemsetAsync(data_, 0, count_ * sizeof(T), stream));
  }

 private:
  void reset() noexcept {
    if (data_ != nullptr) free_device(data_);
    data_ = nullptr;
    count_ = 0;
  }

  T* data_ = nullptr;
  std::size_t count_ = 0;
};

// A non-blocking stream of the current device.
class Stream {
 public:
  Stream();
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return stream_; }
  void synchronize() const;

 private:
  cudaStream_t stream_ = nullptr;
};

class Event {
 public:
  Event();
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return event_; }
  void record(cudaStream_t stream) const;
  void synchronize() const;
  // Milliseconds from `start` to this event (both recorded and completed).
  float elapsed_ms_since(const Event& start) const;

 private:
  cudaEvent_t event_ = nullptr;
};

// A cuBLAS handle bound to `stream` (default math: fp32 stays fp32, no TF32).
class CublasHandle {
 public:
  explicit CublasHandle(cudaStream_t stream);
  ~CublasHandle();
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  cublasHandle_t get() const { return handle_; }

 private:
  cublasHandle_t handle_ = nullptr;
};

class CusolverHandle {
 public:
  explicit CusolverHandle(cudaStream_t stream);
  ~CusolverHandle();
  CusolverHandle(const CusolverHandle&) = delete;
  CusolverHandle& operator=(const CusolverHandle&) = delete;
  cusolverDnHandle_t get() const { return handle_; }

 private:
  cusolverDnHandle_t handle_ = nullptr;
};

// Options object of the cuSOLVER 64-bit API.
class CusolverParams {
 public:
  CusolverParams();
  ~CusolverParams();
  CusolverParams(const CusolverParams&) = delete;
  CusolverParams& operator=(const CusolverParams&) = delete;
  cusolverDnParams_t get() const { return params_; }

 private:
  cusolverDnParams_t params_ = nullptr;
};

// Page-locked host memory (for asynchronous transfers). Move-only.
template <typename T>
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(std::size_t count) : count_(count) {
    if (count > 0) {
      void* p = nullptr;
      QSHARD_CUDA_CHECK(cudaMallocHost(&p, count * sizeof(T)));
      data_ = static_cast<T*>(p);
    }
  }
  ~PinnedBuffer() {
    if (data_ != nullptr) (void)cudaFreeHost(data_);
  }
  PinnedBuffer(PinnedBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), count_(std::exchange(other.count_, 0)) {}
  PinnedBuffer& operator=(PinnedBuffer&& other) noexcept {
    if (this != &other) {
      if (data_ != nullptr) (void)cudaFreeHost(data_);
      data_ = std::exchange(other.data_, nullptr);
      count_ = std::exchange(other.count_, 0);
    }
    return *this;
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  T* data() { return data_; }
  const T* data() const { return data_; }
  std::size_t size() const { return count_; }

 private:
  T* data_ = nullptr;
  std::size_t count_ = 0;
};

// A device-side error flag (first offending linear index, or UINT64_MAX when none), for kernels
// that validate their inputs.
class ErrorIndex {
 public:
  ErrorIndex() : flag_(1) {}
  void reset(cudaStream_t stream);
  // Synchronises `stream`; returns UINT64_MAX when no kernel reported an error.
  std::uint64_t fetch(cudaStream_t stream) const;
  unsigned long long* data() { return flag_.data(); }

 private:
  DeviceBuffer<unsigned long long> flag_;
};

// Checks that a kernel launch succeeded (launch configuration errors).
void check_launch(const char* kernel);

}  // namespace qshard::cuda
