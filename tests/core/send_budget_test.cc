#include "core/send_budget.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hookfan::broker {
namespace {

using ::testing::ElementsAre;
using Stall = SendBudget::Stall;

constexpr size_t kKiB = 1 << 10;
constexpr size_t kMiB = 1 << 20;

class SendBudgetTest : public ::testing::Test {
 protected:
  FakeClock clock_;
  SendBudget budget_{{.total_bytes = 64 * kMiB,
                      .min_batch_bytes = 16 * kKiB,
                      .stall_timeout = absl::Seconds(30),
                      .clock = &clock_}};
};

// With the budget empty a stream gets the batch it asked for.
TEST_F(SendBudgetTest, EmptyBudgetGrantsTheFullBatch) {
  EXPECT_EQ(budget_.BatchBytes(1 * kMiB), 1 * kMiB);
  EXPECT_EQ(budget_.BatchBytes(8 * kKiB), 8 * kKiB);  // never more than asked
}

// As holds fill the budget batches shrink, to the minimum once it is full,
// and grow back as holds are released.
TEST_F(SendBudgetTest, BatchesShrinkAsTheBudgetFillsAndGrowBack) {
  const uint64_t big = budget_.Hold(48 * kMiB, [](Stall) {});
  EXPECT_EQ(budget_.BatchBytes(4 * kMiB), 1 * kMiB);  // a sixteenth of 16 MiB free
  const uint64_t rest = budget_.Hold(16 * kMiB, [](Stall) {});
  EXPECT_EQ(budget_.queued_bytes(), 64 * kMiB);
  EXPECT_EQ(budget_.BatchBytes(4 * kMiB), 16 * kKiB);
  const uint64_t over = budget_.Hold(16 * kKiB, [](Stall) {});  // the minimum is never refused
  EXPECT_EQ(budget_.BatchBytes(4 * kMiB), 16 * kKiB);
  budget_.Release(big);
  budget_.Release(rest);
  budget_.Release(over);
  EXPECT_EQ(budget_.queued_bytes(), 0u);
  EXPECT_EQ(budget_.BatchBytes(4 * kMiB), 4 * kMiB);
}

// However many streams take their batch, what they hold together stays
// within the budget plus the minimum for each stream.
TEST_F(SendBudgetTest, ManyStreamsHoldAboutTheBudget) {
  constexpr int kStreams = 1000;
  for (int i = 0; i < kStreams; ++i) budget_.Hold(budget_.BatchBytes(1 * kMiB), [](Stall) {});
  EXPECT_LE(budget_.queued_bytes(), 64 * kMiB + kStreams * 16 * kKiB);
  EXPECT_GE(budget_.queued_bytes(), 63 * kMiB);
}

// A hold not released within the stall timeout is reported once as a
// stall, then again every further timeout; a released one never.
TEST_F(SendBudgetTest, HoldPastTheStallTimeoutStallsThenStallsAgain) {
  std::vector<Stall> stalls;
  budget_.Hold(1 * kMiB, [&](Stall s) { stalls.push_back(s); });
  const uint64_t released = budget_.Hold(1 * kMiB, [&](Stall) { ADD_FAILURE() << "released"; });
  clock_.Advance(absl::Seconds(29));
  EXPECT_EQ(budget_.ExpireStalled(), 0u);
  budget_.Release(released);
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(budget_.ExpireStalled(), 1u);
  EXPECT_EQ(budget_.ExpireStalled(), 0u);  // not due again yet
  clock_.Advance(absl::Seconds(30));
  EXPECT_EQ(budget_.ExpireStalled(), 1u);
  EXPECT_THAT(stalls, ElementsAre(Stall::kFirst, Stall::kAgain));
  EXPECT_EQ(budget_.stalled_total(), 1u);  // one stream stalled, however often told
}

// Stall timeout 0 turns stalling off.
TEST(SendBudgetNoTimeoutTest, ZeroTimeoutNeverStalls) {
  FakeClock clock;
  SendBudget budget({.stall_timeout = absl::ZeroDuration(), .clock = &clock});
  budget.Hold(1 * kMiB, [](Stall) { ADD_FAILURE() << "stalled"; });
  clock.Advance(absl::Hours(1));
  EXPECT_EQ(budget.ExpireStalled(), 0u);
}

// The sweep runs often enough to catch a stall within a quarter of the
// timeout, but no more than 100 times a second nor less than once a second.
TEST(SendBudgetSweepTest, SweepIntervalIsAQuarterOfTheTimeoutWithinBounds) {
  EXPECT_EQ(SendBudget({.stall_timeout = absl::Seconds(2)}).sweep_interval(),
            absl::Milliseconds(500));
  EXPECT_EQ(SendBudget({.stall_timeout = absl::Minutes(5)}).sweep_interval(), absl::Seconds(1));
  EXPECT_EQ(SendBudget({.stall_timeout = absl::Milliseconds(1)}).sweep_interval(),
            absl::Milliseconds(10));
}

}  // namespace
}  // namespace hookfan::broker
