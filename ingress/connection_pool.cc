#include "ingress/connection_pool.h"

#include <cstdlib>

#include "common/log.h"

namespace hookfan::ingress {
namespace {

thread_local bool refusing = false;

}  // namespace

bool ConnectionPool::Refusing() { return refusing; }

ConnectionPool::ConnectionPool(Options options, ConnectionCounts* counts)
    : options_(options), counts_(counts) {
  if (options_.threads < 1 || options_.max_connections < options_.threads ||
      options_.max_pending_refusals < 1) {
    log::Error("connection pool: bad bounds", {{"threads", options_.threads},
                                                {"max_connections", options_.max_connections},
                                                {"max_pending_refusals",
                                                 options_.max_pending_refusals}});
    std::abort();
  }
  for (int i = 0; i < options_.threads; ++i) workers_.emplace_back([this] { Work(); });
  refuser_ = std::thread([this] {
    refusing = true;
    Refuse();
  });
}

ConnectionPool::~ConnectionPool() { shutdown(); }

void ConnectionPool::enqueue(std::function<void()> connection) {
  MutexLock lock(&mu_);
  if (stopping_) {
    log::Error("connection pool: enqueue after shutdown");
    std::abort();
  }
  // Blocks the accept thread while both queues are full: the connections
  // being served end after their current request once httplib stops, so
  // this cannot hold up shutdown for longer than that.
  mu_.Await(absl::Condition(
      +[](ConnectionPool* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
        return p->held_ < p->options_.max_connections ||
               p->refusals_.size() < static_cast<size_t>(p->options_.max_pending_refusals);
      },
      this));
  if (held_ < options_.max_connections) {
    ++held_;
    counts_->open.store(held_, std::memory_order_relaxed);
    waiting_.push_back(std::move(connection));
  } else {
    counts_->refused.fetch_add(1, std::memory_order_relaxed);
    refusals_.push_back(std::move(connection));
  }
}

void ConnectionPool::Work() {
  while (true) {
    std::function<void()> connection;
    {
      MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](ConnectionPool* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
            return p->stopping_ || !p->waiting_.empty();
          },
          this));
      if (waiting_.empty()) return;  // stopping and drained
      connection = std::move(waiting_.front());
      waiting_.pop_front();
    }
    connection();
    MutexLock lock(&mu_);
    --held_;
    counts_->open.store(held_, std::memory_order_relaxed);
  }
}

void ConnectionPool::Refuse() {
  while (true) {
    std::function<void()> connection;
    {
      MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](ConnectionPool* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
            return p->stopping_ || !p->refusals_.empty();
          },
          this));
      if (refusals_.empty()) return;  // stopping and drained
      connection = std::move(refusals_.front());
      refusals_.pop_front();
    }
    connection();
  }
}

void ConnectionPool::shutdown() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : workers_) {
    if (t.joinable()) t.join();
  }
  if (refuser_.joinable()) refuser_.join();
}

}  // namespace hookfan::ingress
