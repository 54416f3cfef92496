#include "ingress/rate_limiter.h"

#include <atomic>
#include <optional>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "common/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hookfan::ingress {
namespace {

using ::testing::Eq;
using ::testing::Optional;

class RateLimiterTest : public ::testing::Test {
 protected:
  // Acquires `n` times at the current time; returns how many were admitted.
  int AdmittedOf(RateLimiter& limiter, int n) {
    int admitted = 0;
    for (int i = 0; i < n; ++i) admitted += !limiter.Acquire().has_value();
    return admitted;
  }

  FakeClock clock_;
};

TEST_F(RateLimiterTest, UnlimitedAlwaysAdmits) {
  RateLimiter limiter({.per_second = 0, .burst = 0}, &clock_);
  EXPECT_EQ(AdmittedOf(limiter, 10000), 10000);
}

TEST_F(RateLimiterTest, BurstIsAdmittedThenTheWaitForOneToken) {
  // 2 per second, bursts of 3: the fourth request waits half a second.
  RateLimiter limiter({.per_second = 2, .burst = 3}, &clock_);
  EXPECT_EQ(AdmittedOf(limiter, 3), 3);
  EXPECT_THAT(limiter.Acquire(), Optional(Eq(absl::Milliseconds(500))));
}

TEST_F(RateLimiterTest, RefusedRequestTakesNoToken) {
  RateLimiter limiter({.per_second = 2, .burst = 1}, &clock_);
  EXPECT_EQ(AdmittedOf(limiter, 1), 1);
  clock_.Advance(absl::Milliseconds(200));
  EXPECT_THAT(limiter.Acquire(), Optional(Eq(absl::Milliseconds(300))));
  EXPECT_THAT(limiter.Acquire(), Optional(Eq(absl::Milliseconds(300))));
}

TEST_F(RateLimiterTest, WaitingTheAnsweredDurationIsEnough) {
  RateLimiter limiter({.per_second = 3, .burst = 1}, &clock_);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(limiter.Acquire(), std::nullopt) << i;
    const std::optional<absl::Duration> wait = limiter.Acquire();
    ASSERT_TRUE(wait.has_value()) << i;
    clock_.Advance(*wait);
  }
}

TEST_F(RateLimiterTest, SustainedRateIsPerSecond) {
  // Over 10 s of constant demand: the burst plus 10 s worth of tokens.
  RateLimiter limiter({.per_second = 50, .burst = 100}, &clock_);
  int admitted = 0;
  for (int ms = 0; ms < 10000; ms += 10) {
    admitted += AdmittedOf(limiter, 5);
    clock_.Advance(absl::Milliseconds(10));
  }
  EXPECT_EQ(admitted, 100 + 500 - 1);  // the last refill lands after 10 s
}

TEST_F(RateLimiterTest, IdleBucketHoldsNoMoreThanTheBurst) {
  RateLimiter limiter({.per_second = 10, .burst = 4}, &clock_);
  clock_.Advance(absl::Hours(1));
  EXPECT_EQ(AdmittedOf(limiter, 100), 4);
}

TEST_F(RateLimiterTest, ZeroBurstMeansOneSecondOfRate) {
  RateLimiter limiter({.per_second = 5, .burst = 0}, &clock_);
  EXPECT_EQ(AdmittedOf(limiter, 100), 5);
}

TEST_F(RateLimiterTest, RateBelowOnePerSecondStillAdmitsOne) {
  RateLimiter limiter({.per_second = 0.5, .burst = 0}, &clock_);
  EXPECT_EQ(AdmittedOf(limiter, 1), 1);
  EXPECT_THAT(limiter.Acquire(), Optional(Eq(absl::Seconds(2))));
}

TEST_F(RateLimiterTest, ClockSteppingBackAdmitsNothingExtra) {
  RateLimiter limiter({.per_second = 1, .burst = 2}, &clock_);
  EXPECT_EQ(AdmittedOf(limiter, 2), 2);
  clock_.Advance(absl::Seconds(-30));
  EXPECT_THAT(limiter.Acquire(), Optional(Eq(absl::Seconds(31))));
}

TEST_F(RateLimiterTest, ConcurrentCallersShareOneBucket) {
  // With the clock standing still, exactly the burst gets through.
  RateLimiter limiter({.per_second = 1, .burst = 50}, &clock_);
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        if (!limiter.Acquire().has_value()) ++admitted;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 50);
}

TEST(RetryAfterSecondsTest, RoundsUpToWholeSecondsAtLeastOne) {
  EXPECT_EQ(RetryAfterSeconds(absl::ZeroDuration()), 1);
  EXPECT_EQ(RetryAfterSeconds(absl::Nanoseconds(1)), 1);
  EXPECT_EQ(RetryAfterSeconds(absl::Seconds(1)), 1);
  EXPECT_EQ(RetryAfterSeconds(absl::Milliseconds(1001)), 2);
  EXPECT_EQ(RetryAfterSeconds(absl::Seconds(31)), 31);
}

}  // namespace
}  // namespace hookfan::ingress
