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
  workers_ = std::make_unique<Executor>(options_.threads);
  refuser_ = std::make_unique<Executor>(1);
}

ConnectionPool::~ConnectionPool() { shutdown(); }

void ConnectionPool::enqueue(std::function<void()> connection) {
  MutexLock lock(&mu_);
  if (stopping_) {
    log::Error("connection pool: enqueue after shutdown");
    std::abort();
  }
  // Blocks the accept thread while both are full: the connections being
  // served end after their current request once httplib stops, so this
  // cannot hold up shutdown for longer than that.
  mu_.Await(absl::Condition(
      +[](ConnectionPool* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
        return p->held_ < p->options_.max_connections ||
               p->pending_refusals_ < p->options_.max_pending_refusals;
      },
      this));
  if (held_ < options_.max_connections) {
    ++held_;
    counts_->open.store(held_, std::memory_order_relaxed);
    workers_->Schedule([this, connection = std::move(connection)] {
      connection();
      MutexLock lock(&mu_);
      --held_;
      counts_->open.store(held_, std::memory_order_relaxed);
    });
  } else {
    ++pending_refusals_;
    counts_->refused.fetch_add(1, std::memory_order_relaxed);
    refuser_->Schedule([this, connection = std::move(connection)] {
      {
        MutexLock lock(&mu_);
        --pending_refusals_;
      }
      refusing = true;
      connection();
      refusing = false;
    });
  }
}

void ConnectionPool::shutdown() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  // Each runs what it was given, then joins its threads.
  workers_.reset();
  refuser_.reset();
}

}  // namespace hookfan::ingress
