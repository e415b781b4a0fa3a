// Device memory through the stream-ordered pool (backend/cuda/device.hpp): freed memory is kept
// for the next allocation, counted as available, and reused; a buffer freed while a kernel still
// writes it is not handed out before the kernel is done.
#include <gtest/gtest.h>

#include <vector>

#include "device.hpp"
#include "gpu_test_support.hpp"
#include "random_kernels.hpp"

namespace qshard {
namespace {

using cuda::DeviceBuffer;

constexpr std::size_t kGiB = std::size_t{1} << 30;

std::size_t driver_free() {
  std::size_t free_bytes = 0, total_bytes = 0;
  QSHARD_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  return free_bytes;
}

TEST(DeviceMemory, FreedMemoryStaysInThePoolAndCountsAsAvailable) {
  QSHARD_REQUIRE_GPU();
  const cuda::DeviceGuard guard(0);
  cuda::keep_freed_device_memory(0);
  const std::size_t before = cuda::available_device_memory();
  {
    DeviceBuffer<std::byte> big(kGiB);
    EXPECT_LE(cuda::available_device_memory(), before - kGiB + (kGiB / 16));
  }
  // The driver sees the GiB as used (the pool keeps it mapped), the allocator as available.
  EXPECT_LE(driver_free(), before - kGiB + (kGiB / 16));
  EXPECT_GE(cuda::available_device_memory(), before - (kGiB / 16));
  // The next allocation of the same size takes the kept memory: the driver's free memory does not
  // fall again.
  const std::size_t kept = driver_free();
  {
    DeviceBuffer<std::byte> again(kGiB);
    EXPECT_GE(driver_free() + (kGiB / 16), kept);
  }
}

TEST(DeviceMemory, AFreedBufferIsNotReusedWhileAnotherStreamStillWritesIt) {
  QSHARD_REQUIRE_GPU();
  const cuda::DeviceGuard guard(0);
  cuda::keep_freed_device_memory(0);
  const cuda::Stream writer, reader;
  const std::size_t count = std::size_t{64} << 20;  // 256 MB of floats
  {
    DeviceBuffer<float> first(count);
    // Long work into `first` on one stream; `first` is freed with the work still queued.
    for (int i = 0; i < 16; ++i)
      QSHARD_CUDA_CHECK(cuda::kernels::fill_normal(first.data(), count, 7, 1.0f, writer.get()));
  }
  // The pool may give `second` the same memory, but only once the writer is done with it:
  // otherwise the writer's queued fills would overwrite what the other stream writes here.
  DeviceBuffer<float> second(count);
  QSHARD_CUDA_CHECK(cuda::kernels::fill_normal(second.data(), count, 99, 1.0f, reader.get()));
  reader.synchronize();
  writer.synchronize();
  std::vector<float> seen(count), expected(count);
  second.download(seen.data(), count, reader.get());
  DeviceBuffer<float> reference(count);
  QSHARD_CUDA_CHECK(cuda::kernels::fill_normal(reference.data(), count, 99, 1.0f, reader.get()));
  reference.download(expected.data(), count, reader.get());
  reader.synchronize();
  EXPECT_EQ(seen, expected);
}

}  // namespace
}  // namespace qshard
