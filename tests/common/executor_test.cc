#include "common/executor.h"

#include <atomic>
#include <vector>

#include "common/sync.h"
#include "gtest/gtest.h"

namespace hookfan {
namespace {

// One thread runs closures in the order they were scheduled.
TEST(ExecutorTest, OneThreadRunsInOrder) {
  Mutex mu;
  std::vector<int> order;
  {
    Executor executor(1);
    for (int i = 0; i < 100; ++i) {
      executor.Schedule([&, i] {
        MutexLock lock(&mu);
        order.push_back(i);
      });
    }
  }  // the destructor runs what is queued, then joins
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
}

TEST(ExecutorTest, DestructorRunsEverythingQueued) {
  std::atomic<int> ran = 0;
  {
    Executor executor(3);
    for (int i = 0; i < 1000; ++i) executor.Schedule([&] { ran.fetch_add(1); });
  }
  EXPECT_EQ(ran.load(), 1000);
}

}  // namespace
}  // namespace hookfan
