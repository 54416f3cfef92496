#include "server/call_rate.h"

#include "gtest/gtest.h"

namespace hookfan::server {
namespace {

// A connection may start its allowance in one second; the next call is over.
TEST(CallRateTest, CallsPastTheRateInOneSecondAreOver) {
  FakeClock clock;
  CallRate rate(3, &clock);
  EXPECT_TRUE(rate.Admit("ipv4:10.0.0.1:5000"));
  EXPECT_TRUE(rate.Admit("ipv4:10.0.0.1:5000"));
  EXPECT_TRUE(rate.Admit("ipv4:10.0.0.1:5000"));
  EXPECT_FALSE(rate.Admit("ipv4:10.0.0.1:5000"));
}

// Each connection has its own allowance, and a new second a new one.
TEST(CallRateTest, ConnectionsAndSecondsAreCountedApart) {
  FakeClock clock;
  CallRate rate(1, &clock);
  EXPECT_TRUE(rate.Admit("ipv4:10.0.0.1:5000"));
  EXPECT_TRUE(rate.Admit("ipv4:10.0.0.1:5001"));
  EXPECT_FALSE(rate.Admit("ipv4:10.0.0.1:5000"));
  clock.Advance(absl::Seconds(1));
  EXPECT_TRUE(rate.Admit("ipv4:10.0.0.1:5000"));
  // Long after, with the idle windows pruned, the connection starts afresh.
  clock.Advance(absl::Minutes(1));
  EXPECT_TRUE(rate.Admit("ipv4:10.0.0.1:5000"));
  EXPECT_FALSE(rate.Admit("ipv4:10.0.0.1:5000"));
}

// 0 is no limit.
TEST(CallRateTest, ZeroAdmitsEverything) {
  FakeClock clock;
  CallRate rate(0, &clock);
  for (int i = 0; i < 10000; ++i) ASSERT_TRUE(rate.Admit("ipv4:10.0.0.1:5000"));
}

}  // namespace
}  // namespace hookfan::server
