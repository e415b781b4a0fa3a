#pragma once
// A fork-join loop over independent work items on host threads.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace qshard {

// Runs fn(0), ..., fn(count - 1) on up to `threads` threads (the caller's among them); the items
// must be independent. Rethrows the first exception after all threads have finished.
template <typename Fn>
void parallel_for(std::size_t count, int threads, const Fn& fn) {
  const std::size_t workers =
      std::min<std::size_t>(count, static_cast<std::size_t>(std::max(threads, 1)));
  std::atomic<std::size_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  const auto run = [&] {
    for (std::size_t i = next++; i < count; i = next++) {
      try {
        fn(i);
      } catch (...) {
        const std::lock_guard lock(failure_mutex);
        if (!failure) failure = std::current_exception();
      }
    }
  };
  std::vector<std::thread> pool;
  for (std::size_t t = 1; t < workers; ++t) pool.emplace_back(run);
  run();
  for (std::thread& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace qshard
