#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace hookfan::bench {

// What one fan-out run measured.
struct FanoutResult {
  uint64_t published = 0;   // messages published
  uint64_t deliveries = 0;  // messages received, summed over subscribers
  uint64_t dropped = 0;     // messages the client library dropped (slow consumer)
  double seconds = 0;       // first publish to last delivery (or timeout)
  double deliveries_per_second = 0;
  uint64_t worst_lag = 0;   // when publishing ended: max over subscribers of published - received
  // The CPU this process spent on the subscribers (all of it but the
  // publishing thread's), from the first publish to the last delivery.
  double subscriber_cpu_seconds = 0;
};

// The NATS core pub/sub baseline for hookfan's fan-out: `subscribers`
// separate connections subscribe to one subject; one publisher connection
// publishes `messages` messages of `payload_bytes` as fast as it can and
// flushes; then waits until every subscriber has every message, or
// `timeout`. Pending limits are lifted so NATS drops nothing it can hold.
// Message delivery uses the library's global pool (not a thread per
// connection). Errors: kUnavailable when it cannot connect to `url`.
// `before_publishing` runs once every subscriber is subscribed, right
// before the first publish (where a caller starts its CPU clocks).
absl::StatusOr<FanoutResult> RunNatsFanout(const std::string& url, int subscribers,
                                           uint64_t messages, size_t payload_bytes,
                                           const std::function<void()>& before_publishing,
                                           absl::Duration timeout = absl::Seconds(60));

}  // namespace hookfan::bench
