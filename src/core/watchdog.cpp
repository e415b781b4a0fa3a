#include "qshard/core/watchdog.hpp"

#include <utility>

namespace qshard {

Watchdog::Watchdog(double timeout_seconds, Expired on_expired)
    : timeout_(timeout_seconds), on_expired_(std::move(on_expired)) {
  if (timeout_seconds > 0) thread_ = std::thread([this] { run(); });
}

Watchdog::~Watchdog() {
  {
    const std::lock_guard lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Watchdog::Wait Watchdog::wait(std::string what) {
  if (!thread_.joinable()) return Wait(nullptr);
  {
    const std::lock_guard lock(mutex_);
    started_ = Clock::now();
    what_ = std::move(what);
  }
  changed_.notify_all();
  return Wait(this);
}

void Watchdog::disarm() {
  const std::lock_guard lock(mutex_);
  started_.reset();
}

void Watchdog::run() {
  std::unique_lock lock(mutex_);
  while (!stop_) {
    if (!started_) {
      changed_.wait(lock);
      continue;
    }
    const auto deadline = *started_ + std::chrono::duration_cast<Clock::duration>(timeout_);
    changed_.wait_until(lock, deadline);
    if (stop_ || !started_ || Clock::now() < *started_ + timeout_) continue;
    const std::string what = what_;
    const double waited = std::chrono::duration<double>(Clock::now() - *started_).count();
    started_.reset();  // one call per wait
    lock.unlock();
    on_expired_(what, waited);
    lock.lock();
  }
}

Watchdog::Wait::~Wait() {
  if (watchdog_ != nullptr) watchdog_->disarm();
}

Watchdog::Wait::Wait(Wait&& other) noexcept : watchdog_(std::exchange(other.watchdog_, nullptr)) {}

}  // namespace qshard
