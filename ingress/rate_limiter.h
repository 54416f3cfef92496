#pragma once

#include <cstdint>
#include <mutex>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "ingress/source_config.h"

namespace hookfan::ingress {

// RateLimiter admits at most `per_second` requests per second on average,
// with bursts of up to `burst` requests after a quiet spell: a token bucket
// holding `burst` tokens, refilled at `per_second`, starting full. A
// `burst` of 0 means max(1, per_second); a `per_second` of 0 means
// unlimited. (Kept as the equivalent "theoretical arrival time", so it is
// exact to the nanosecond and a clock stepping back admits nothing extra.)
//
// Thread-safe. `clock` must outlive the limiter.
class RateLimiter {
 public:
  RateLimiter(RateLimitConfig config, Clock* clock);
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // Takes one token: nullopt if the request is admitted; otherwise nothing
  // is taken and the result is how long until a token is available (> 0).
  std::optional<absl::Duration> Acquire();

 private:
  const bool unlimited_;
  const absl::Duration interval_;   // between tokens: 1 / per_second
  const absl::Duration tolerance_;  // (capacity - 1) * interval_
  Clock* const clock_;

  std::mutex mu_;
  // When the bucket is full again; in the past when it already is.
  absl::Time full_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

// The value of a Retry-After header for a wait: whole seconds rounded up,
// at least 1.
int64_t RetryAfterSeconds(absl::Duration wait);

}  // namespace hookfan::ingress
