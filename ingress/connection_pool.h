#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>

#include <httplib.h>

#include "absl/base/thread_annotations.h"
#include "common/executor.h"
#include "common/sync.h"

namespace hookfan::ingress {

// What ConnectionPools count, read by the metrics at scrape time. Owned by
// the HttpServer, since httplib makes a new pool for every listen. Must
// outlive the pools that count into it. Lock-free; any thread.
struct ConnectionCounts {
  // Connections held: being served, or accepted and waiting for a worker.
  std::atomic<int64_t> open{0};
  // Connections accepted while `max_connections` were held, handed to the
  // refusal thread.
  std::atomic<uint64_t> refused{0};
};

// ConnectionPool is the httplib::TaskQueue behind HttpServer: httplib's
// accept loop hands it one closure per accepted connection, which serves
// the connection and closes its socket. It replaces httplib::ThreadPool,
// whose queue of waiting connections has no bound.
//
// `threads` workers serve held connections in FIFO order. At most
// `max_connections` are held (served + waiting for a worker). A connection
// accepted while that many are held is refused instead: its closure runs on
// one refusal thread, where Refusing() is true, so the request handlers
// answer it 503 and close it (see HttpServer). At most
// `max_pending_refusals` refusals wait for that thread; when that queue is
// full too, enqueue blocks the accept thread until a connection ends or a
// refusal is done, so further connections wait in the kernel's listen
// backlog. Memory stays bounded either way.
//
// Every closure handed to enqueue runs exactly once (a dropped closure
// would leak its socket), also through shutdown.
//
// Thread-safe: enqueue may be called from any thread, but not once shutdown
// has begun. `counts` must outlive the pool.
class ConnectionPool final : public httplib::TaskQueue {
 public:
  struct Options {
    int threads = 64;               // ≥ 1
    int max_connections = 1024;     // ≥ threads
    int max_pending_refusals = 64;  // ≥ 1
  };

  // Crashes on options that break the bounds above (bad start-up config).
  ConnectionPool(Options options, ConnectionCounts* counts);
  ~ConnectionPool() override;  // shutdown()
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // Holds `connection` for a worker, or queues it for refusal; blocks while
  // neither has room (see above).
  void enqueue(std::function<void()> connection) override;

  // Runs every queued closure (served or refused, as already decided),
  // then joins every thread. Returns once connections being served end;
  // httplib calls it after stop(), when connections end after their
  // current request. Safe to call again (not concurrently).
  void shutdown() override;

  // True on the refusal thread, i.e. while serving a connection that is to
  // be answered 503.
  static bool Refusing();

 private:
  const Options options_;
  ConnectionCounts* const counts_;

  Mutex mu_;
  int held_ ABSL_GUARDED_BY(mu_) = 0;  // waiting for a worker + being served
  int pending_refusals_ ABSL_GUARDED_BY(mu_) = 0;  // not yet begun
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::unique_ptr<Executor> workers_;  // `threads`, FIFO
  std::unique_ptr<Executor> refuser_;  // one thread
};

}  // namespace hookfan::ingress
