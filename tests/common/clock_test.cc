#include "common/clock.h"

#include "gtest/gtest.h"

namespace hookfan {
namespace {

TEST(ClockTest, FakeClockMovesOnlyWhenTold) {
  FakeClock clock(absl::FromUnixSeconds(100));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(100));
  clock.Advance(absl::Milliseconds(1500));
  EXPECT_EQ(clock.Now(), absl::FromUnixMillis(101500));
  clock.Set(absl::FromUnixSeconds(7));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(7));
}

// Timestamps keep nanoseconds both ways, before 1970 too (nanos stay in
// [0, 1e9) as protobuf requires).
TEST(ClockTest, TimestampsRoundTripToTheNanosecond) {
  for (absl::Time t : {absl::FromUnixNanos(1767225600123456789), absl::FromUnixNanos(-1500000001),
                       absl::UnixEpoch()}) {
    google::protobuf::Timestamp ts;
    SetTimestamp(t, &ts);
    EXPECT_GE(ts.nanos(), 0);
    EXPECT_LT(ts.nanos(), 1000000000);
    EXPECT_EQ(ToTime(ts), t);
  }
}

TEST(ClockTest, DurationsConvert) {
  google::protobuf::Duration d;
  d.set_seconds(90);
  d.set_nanos(500000000);
  EXPECT_EQ(ToDuration(d), absl::Milliseconds(90500));
}

}  // namespace
}  // namespace hookfan
