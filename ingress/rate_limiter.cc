#include "ingress/rate_limiter.h"

#include <algorithm>

namespace hookfan::ingress {
namespace {

double Capacity(const RateLimitConfig& config) {
  return config.burst > 0 ? std::max(config.burst, 1.0)
                          : std::max(config.per_second, 1.0);
}

}  // namespace

RateLimiter::RateLimiter(RateLimitConfig config, Clock* clock)
    : unlimited_(!(config.per_second > 0)),
      interval_(unlimited_ ? absl::ZeroDuration()
                           : absl::Seconds(1 / config.per_second)),
      tolerance_(interval_ * (Capacity(config) - 1)),
      clock_(clock) {}

std::optional<absl::Duration> RateLimiter::Acquire() {
  if (unlimited_) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  const absl::Time now = clock_->Now();
  // full_at - now is the part of the bucket in use, as time to refill it;
  // one more token fits while that is within the tolerance.
  const absl::Time full_at = std::max(full_at_, now);
  if (full_at - now > tolerance_) return full_at - now - tolerance_;
  full_at_ = full_at + interval_;
  return std::nullopt;
}

int64_t RetryAfterSeconds(absl::Duration wait) {
  return std::max<int64_t>(
      1, absl::ToInt64Seconds(absl::Ceil(wait, absl::Seconds(1))));
}

}  // namespace hookfan::ingress
