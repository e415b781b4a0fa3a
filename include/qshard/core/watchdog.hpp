#pragma once
// A thread that watches blocking waits: the job arms it around each wait (a collective) with a
// description of what it waits for, and a wait that lasts longer than the timeout calls
// `on_expired` on the watchdog's thread (qshard-quantize prints a line and aborts the job there,
// so that one stopped or hung rank does not leave the others waiting forever).
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace qshard {

class Watchdog {
 public:
  using Expired = std::function<void(const std::string& what, double waited_seconds)>;

  // A timeout of 0 (or less) never expires and starts no thread.
  Watchdog(double timeout_seconds, Expired on_expired);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Keeps the watchdog armed while it lives (one wait at a time, from one thread).
  class Wait {
   public:
    ~Wait();
    Wait(Wait&& other) noexcept;
    Wait(const Wait&) = delete;
    Wait& operator=(const Wait&) = delete;
    Wait& operator=(Wait&&) = delete;

   private:
    friend class Watchdog;
    explicit Wait(Watchdog* watchdog) : watchdog_(watchdog) {}
    Watchdog* watchdog_;
  };
  [[nodiscard]] Wait wait(std::string what);
  double timeout_seconds() const { return timeout_.count(); }

 private:
  using Clock = std::chrono::steady_clock;
  void disarm();
  void run();

  const std::chrono::duration<double> timeout_;
  const Expired on_expired_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::optional<Clock::time_point> started_;  // of the armed wait
  std::string what_;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace qshard
