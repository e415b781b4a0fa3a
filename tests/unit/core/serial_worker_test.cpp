// SerialWorker: tasks in submission order, results and exceptions through futures, and the
// background priority (nice 10) for the worker and the threads it starts.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <thread>
#include <vector>

#include "qshard/core/serial_worker.hpp"

namespace qshard {
namespace {

int nice_of_this_thread() { return getpriority(PRIO_PROCESS, static_cast<id_t>(::gettid())); }

TEST(SerialWorker, RunsTasksInOrderAndPassesResultsAndErrors) {
  SerialWorker worker;
  std::vector<int> order;
  std::vector<std::future<int>> results;
  for (int i = 0; i < 5; ++i)
    results.push_back(worker.submit([&order, i] {
      order.push_back(i);
      return i * i;
    }));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(results[static_cast<std::size_t>(i)].get(), i * i);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  auto failed = worker.submit([]() -> int { throw std::runtime_error("disk full"); });
  EXPECT_THROW(failed.get(), std::runtime_error);
}

TEST(SerialWorker, BackgroundWorkersAndTheirThreadsRunAtNiceTen) {
  const int caller = nice_of_this_thread();
  SerialWorker background(SerialWorker::Priority::Background);
  SerialWorker normal;
  const int worker_nice = background.submit([] { return nice_of_this_thread(); }).get();
  const int child_nice = background
                             .submit([] {
                               int seen = 0;
                               std::thread child([&seen] { seen = nice_of_this_thread(); });
                               child.join();
                               return seen;
                             })
                             .get();
  // Nice 10, or the caller's when it already runs at a lower priority.
  EXPECT_EQ(worker_nice, std::max(caller, 10));
  EXPECT_EQ(child_nice, worker_nice);
  EXPECT_EQ(normal.submit([] { return nice_of_this_thread(); }).get(), caller);
  EXPECT_EQ(nice_of_this_thread(), caller);  // the caller's own thread is untouched
}

}  // namespace
}  // namespace qshard
