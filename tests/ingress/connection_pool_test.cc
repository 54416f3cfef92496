#include "ingress/connection_pool.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/time/time.h"
#include "common/sync.h"
#include "gtest/gtest.h"

namespace hookfan::ingress {
namespace {

// One enqueued "connection": records where and how often it ran, and when
// `hold` is set stays open until it is notified.
struct Connection {
  std::atomic<int> runs{0};
  std::atomic<bool> refused{false};
  Notification started;
  Notification* hold = nullptr;
};

class ConnectionPoolTest : public ::testing::Test {
 protected:
  // A new Connection and the closure that plays it.
  std::function<void()> Open(Notification* hold = nullptr) {
    connections_.push_back(std::make_unique<Connection>());
    Connection* c = connections_.back().get();
    c->hold = hold;
    return [c] {
      c->refused = ConnectionPool::Refusing();
      c->runs.fetch_add(1);
      c->started.Notify();
      if (c->hold != nullptr) c->hold->WaitForNotification();
    };
  }

  Connection& connection(size_t i) { return *connections_[i]; }

  // Declared after the pool, so that a failed assertion releases held
  // connections before the pool's destructor waits for them.
  static auto ReleaseOnExit(Notification& n) {
    return absl::MakeCleanup([&n] {
      if (!n.HasBeenNotified()) n.Notify();
    });
  }

  ConnectionCounts counts_;
  std::vector<std::unique_ptr<Connection>> connections_;
};

TEST_F(ConnectionPoolTest, ConnectionsBeyondTheCapRunOnTheRefusalThread) {
  // 2 threads, at most 3 held: the 4th and 5th connections are refused at once,
  // the 3rd waits for a worker and is served; each runs exactly once.
  Notification release;
  {
    ConnectionPool pool({.threads = 2, .max_connections = 3}, &counts_);
    auto release_on_exit = ReleaseOnExit(release);
    for (int i = 0; i < 5; ++i) pool.enqueue(Open(&release));
    ASSERT_TRUE(connection(0).started.WaitForNotificationWithTimeout(absl::Seconds(10)));
    ASSERT_TRUE(connection(1).started.WaitForNotificationWithTimeout(absl::Seconds(10)));
    ASSERT_TRUE(connection(3).started.WaitForNotificationWithTimeout(absl::Seconds(10)))
        << "the 4th connection was not refused while 3 were held";
    EXPECT_FALSE(connection(2).started.HasBeenNotified()) << "3 connections on 2 threads";
    EXPECT_FALSE(connection(0).refused);
    EXPECT_FALSE(connection(1).refused);
    EXPECT_TRUE(connection(3).refused);
    EXPECT_EQ(counts_.open.load(), 3);
    EXPECT_EQ(counts_.refused.load(), 2u);
    EXPECT_FALSE(ConnectionPool::Refusing()) << "only the refusal thread refuses";
    release.Notify();
    pool.shutdown();
  }
  for (size_t i = 0; i < connections_.size(); ++i) {
    EXPECT_EQ(connection(i).runs.load(), 1) << "connection " << i;
  }
  EXPECT_FALSE(connection(2).refused);
  EXPECT_TRUE(connection(4).refused);
  EXPECT_EQ(counts_.open.load(), 0);
  EXPECT_EQ(counts_.refused.load(), 2u);
}

TEST_F(ConnectionPoolTest, AConnectionThatEndsMakesRoomForTheNext) {
  // Once a held connection ends, the next one is served, not refused.
  Notification release;
  ConnectionPool pool({.threads = 1, .max_connections = 1}, &counts_);
  pool.enqueue(Open());
  ASSERT_TRUE(connection(0).started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (counts_.open.load() != 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_EQ(counts_.open.load(), 0);
  pool.enqueue(Open());
  ASSERT_TRUE(connection(1).started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_FALSE(connection(1).refused);
  EXPECT_EQ(counts_.refused.load(), 0u);
}

TEST_F(ConnectionPoolTest, FullRefusalQueueBlocksEnqueueUntilThereIsRoom) {
  // 1 held, 1 refusal running and 1 pending: the next enqueue waits, and
  // returns once the held connection ends (it is then served, not refused).
  Notification release_held, release_refusals;
  ConnectionPool pool({.threads = 1, .max_connections = 1, .max_pending_refusals = 1},
                      &counts_);
  auto release_held_on_exit = ReleaseOnExit(release_held);
  auto release_refusals_on_exit = ReleaseOnExit(release_refusals);
  pool.enqueue(Open(&release_held));
  pool.enqueue(Open(&release_refusals));  // refused, running
  ASSERT_TRUE(connection(1).started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  pool.enqueue(Open(&release_refusals));  // refused, pending
  std::function<void()> fourth = Open();
  Notification returned;
  std::thread accept([&] {
    pool.enqueue(std::move(fourth));
    returned.Notify();
  });
  EXPECT_FALSE(returned.WaitForNotificationWithTimeout(absl::Milliseconds(200)));
  release_held.Notify();
  EXPECT_TRUE(returned.WaitForNotificationWithTimeout(absl::Seconds(10)));
  accept.join();
  ASSERT_TRUE(connection(3).started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_FALSE(connection(3).refused);
  EXPECT_EQ(counts_.refused.load(), 2u);
  release_refusals.Notify();
}

TEST_F(ConnectionPoolTest, ShutdownRunsEveryQueuedConnectionOnce) {
  // Connections still waiting for a worker or for the refusal thread when
  // shutdown begins all run (each would otherwise leak its socket).
  Notification release;
  auto pool = std::make_unique<ConnectionPool>(
      ConnectionPool::Options{.threads = 1, .max_connections = 4}, &counts_);
  auto release_on_exit = ReleaseOnExit(release);
  // 0 is served, 1-3 wait for the worker, 4 is being refused, 5-9 wait for it.
  for (int i = 0; i < 10; ++i) {
    pool->enqueue(Open(i == 0 || i == 4 ? &release : nullptr));
  }
  ASSERT_TRUE(connection(0).started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(connection(4).started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  std::thread stopper([&] { pool->shutdown(); });
  absl::SleepFor(absl::Milliseconds(50));  // let shutdown begin
  EXPECT_EQ(connection(1).runs.load() + connection(5).runs.load(), 0);
  release.Notify();
  stopper.join();
  pool.reset();  // a second shutdown, from the destructor, is harmless
  int refused = 0;
  for (size_t i = 0; i < connections_.size(); ++i) {
    EXPECT_EQ(connection(i).runs.load(), 1) << "connection " << i;
    refused += connection(i).refused;
  }
  EXPECT_EQ(refused, 6);
  EXPECT_EQ(counts_.refused.load(), 6u);
  EXPECT_EQ(counts_.open.load(), 0);
}

TEST(ConnectionPoolDeathTest, FewerConnectionsThanThreadsIsBadConfig) {
  ConnectionCounts counts;
  EXPECT_DEATH(ConnectionPool({.threads = 4, .max_connections = 3}, &counts),
               "connection pool: bad bounds");
}

}  // namespace
}  // namespace hookfan::ingress
