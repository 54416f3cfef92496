#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <latch>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace hookfan::bench {

// The durable baseline a user would pick instead of hookfan: Redis Streams
// on a redis-server the caller starts with `appendonly yes` and
// `appendfsync always`, so an XADD is answered only once it is on disk.
// Each connection has one request in flight (no pipelining), like the HTTP
// posters hookfan is measured with.

// One timed run of XADDs.
struct RedisIngestResult {
  uint64_t added = 0;               // XADDs answered with an id
  uint64_t errors = 0;              // XADDs answered with an error or not at all
  double seconds = 0;               // first XADD to last answer
  std::vector<int64_t> latency_ns;  // per XADD, send to answer
};

// `connections` threads, each with its own blocking connection to
// host:port, XADD to `stream` one field "data" whose value is
// `make_payload(n)` (n: a counter shared by all threads, from 0). With
// rate == 0 each connection sends as soon as its previous XADD is
// answered; with rate > 0 the XADDs are paced to `rate` per second in all
// (connection c sends at start + c/rate, then every connections/rate). A
// run ends after `seconds` or `limit` XADDs in all, whichever comes first.
// Every connection is open (one PING answered) before the clock starts. A
// connection that fails mid-run counts one error and stops. Errors:
// kUnavailable when it cannot connect.
absl::StatusOr<RedisIngestResult> RunRedisIngest(
    const std::string& host, int port, const std::string& stream, int connections,
    double seconds, uint64_t limit, double rate,
    const std::function<std::string(uint64_t)>& make_payload);

// Readers of a stream: `consumers` threads, each on its own connection,
// loop on XREAD BLOCK 200 COUNT 1024, each passing on the last id it read
// so it misses nothing. They read the entries added after Start (what "$"
// means, resolved to a concrete id up front, so entries added right after
// Start returns are not lost to a late first XREAD). For each entry with a
// "data" field a consumer calls `on_entry` with its value, which is only
// valid during the call; `on_entry` runs on every consumer thread at once
// and must be thread-safe. An entry is counted after its `on_entry`
// returns. A consumer whose connection fails stops, and status() says why.
class RedisConsumers {
 public:
  // Returns once every consumer is connected and about to issue its first
  // XREAD. Errors: kUnavailable when it cannot connect; kFailedPrecondition
  // when `stream` names something other than a stream.
  static absl::StatusOr<std::unique_ptr<RedisConsumers>> Start(
      const std::string& host, int port, const std::string& stream, int consumers,
      std::function<void(std::string_view data)> on_entry);

  RedisConsumers(const RedisConsumers&) = delete;
  RedisConsumers& operator=(const RedisConsumers&) = delete;

  // Stops the consumers (each within one XREAD timeout) and joins them.
  ~RedisConsumers();

  uint64_t total() const;         // entries received, summed over consumers
  uint64_t min_received() const;  // the slowest consumer's count
  absl::Status status() const;    // the first consumer error; OK if none

 private:
  struct Consumer;  // one connection and its count

  RedisConsumers(std::string stream, std::string start_id, int consumers,
                 std::function<void(std::string_view)> on_entry);
  void Consume(Consumer& consumer);
  void Fail(absl::Status status);

  const std::string stream_;
  const std::string start_id_;  // the stream's last id when Start was called
  const std::function<void(std::string_view)> on_entry_;
  std::vector<std::unique_ptr<Consumer>> consumers_;
  std::vector<std::thread> threads_;
  std::latch ready_;  // counted down by each consumer before its first XREAD
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> total_{0};
  mutable std::mutex mu_;
  absl::Status status_;  // guarded by mu_
};

}  // namespace hookfan::bench
