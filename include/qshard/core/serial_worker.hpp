#pragma once
// One background thread that runs submitted tasks in submission order (for I/O that must not
// overlap itself, such as HDF5, while the caller computes). The destructor finishes the queued
// tasks and joins.
#include <sys/resource.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

namespace qshard {

class SerialWorker {
 public:
  enum class Priority : std::uint8_t {
    Normal,
    // Nice 10 (unless already lower priority) for the worker and the threads it starts (Linux
    // threads inherit their creator's nice value): background work yields the cores to the caller's
    // thread, which launches the GPU's work and must not wait for a core.
    Background,
  };

  explicit SerialWorker(Priority priority = Priority::Normal)
      : priority_(priority), thread_([this] { run(); }) {}
  ~SerialWorker() {
    {
      const std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    ready_.notify_one();
    thread_.join();
  }
  SerialWorker(const SerialWorker&) = delete;
  SerialWorker& operator=(const SerialWorker&) = delete;

  // Queues `task`; the future holds its result or its exception.
  template <typename Fn>
  auto submit(Fn task) -> std::future<decltype(task())> {
    using Result = decltype(task());
    auto packaged = std::make_shared<std::packaged_task<Result()>>(std::move(task));
    std::future<Result> result = packaged->get_future();
    {
      const std::lock_guard lock(mutex_);
      tasks_.emplace_back([packaged] { (*packaged)(); });
    }
    ready_.notify_one();
    return result;
  }

 private:
  void run() {
    if (priority_ == Priority::Background) {
      const auto self = static_cast<id_t>(::gettid());
      if (getpriority(PRIO_PROCESS, self) < 10)
        (void)setpriority(PRIO_PROCESS, self, 10);  // best effort
    }
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
        if (tasks_.empty()) return;  // stopping, nothing left
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();  // a packaged_task keeps its exception in the future
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  const Priority priority_;
  std::thread thread_;  // last: started after the members it uses
};

}  // namespace qshard
