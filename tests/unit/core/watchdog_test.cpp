// The collective watchdog: a wait longer than the timeout calls back once with what it waited for;
// waits that end in time, and a timeout of 0, never do.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "qshard/core/watchdog.hpp"

namespace qshard {
namespace {

using namespace std::chrono_literals;

struct Calls {
  std::mutex mutex;
  std::vector<std::pair<std::string, double>> calls;
  Watchdog::Expired callback() {
    return [this](const std::string& what, double waited) {
      const std::lock_guard lock(mutex);
      calls.emplace_back(what, waited);
    };
  }
  std::size_t count() {
    const std::lock_guard lock(mutex);
    return calls.size();
  }
};

TEST(Watchdog, ALongWaitCallsBackOnceNamingIt) {
  Calls calls;
  Watchdog watchdog(0.2, calls.callback());
  {
    const auto wait = watchdog.wait("layer 3: the reduce stage");
    std::this_thread::sleep_for(700ms);
  }
  ASSERT_EQ(calls.count(), 1u);
  EXPECT_EQ(calls.calls[0].first, "layer 3: the reduce stage");
  EXPECT_GE(calls.calls[0].second, 0.2);
}

TEST(Watchdog, WaitsThatEndInTimeNeverCallBack) {
  Calls calls;
  {
    Watchdog watchdog(0.5, calls.callback());
    for (int i = 0; i < 5; ++i) {
      const auto wait = watchdog.wait("layer " + std::to_string(i));
      std::this_thread::sleep_for(100ms);
    }
    std::this_thread::sleep_for(700ms);  // disarmed: nothing to expire
  }
  EXPECT_EQ(calls.count(), 0u);
}

TEST(Watchdog, ZeroTimeoutIsOff) {
  Calls calls;
  Watchdog watchdog(0, calls.callback());
  {
    const auto wait = watchdog.wait("forever");
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_EQ(calls.count(), 0u);
}

}  // namespace
}  // namespace qshard
