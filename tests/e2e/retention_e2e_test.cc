// Retention on the real binary: the store keeps about the newest N events,
// disk use stops growing, and a subscriber behind it is told where the log
// now starts.

#include <httplib.h>

#include <atomic>
#include <filesystem>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/hookfan_process.h"

namespace hookfan::testing {
namespace {

using ::testing::HasSubstr;

// Posts `n` copies of the enrollment fixture from 4 connections.
void PostN(const HookfanProcess& hookfan, int n) {
  std::atomic<int> next = 0, failed = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      httplib::Client c("127.0.0.1", hookfan.http_port());
      const std::string body = ReadFixture("emm_device_enrolled.json");
      while (next.fetch_add(1) < n) {
        auto res = c.Post(hookfan.webhook_path(), body, "application/json");
        if (!res || res->status != 202) ++failed;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
}

uint64_t DiskUse(const std::string& dir) {
  uint64_t bytes = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) bytes += entry.file_size();
  return bytes;
}

TEST(RetentionE2ETest, KeepsTheNewestEventsAndTellsLateSubscribersWhereTheLogStarts) {
  std::string dir = MakeTempDir();
  HookfanProcess hookfan({.data_dir = dir, .extra_args = {"--retention-max-events=1000"}});
  ASSERT_TRUE(hookfan.Start());
  auto wait_for_first = [&](double first) {
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (Metric(hookfan, "hookfan_log_first_sequence") < first && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(50));
    }
    return Metric(hookfan, "hookfan_log_first_sequence");
  };

  PostN(hookfan, 5000);
  EXPECT_EQ(wait_for_first(4001), 4001);
  uint64_t after_5k = DiskUse(dir);
  PostN(hookfan, 5000);
  EXPECT_EQ(wait_for_first(9001), 9001);
  EXPECT_EQ(Metric(hookfan, "hookfan_events_appended_total"), 10000);
  uint64_t after_10k = DiskUse(dir);
  EXPECT_LE(after_10k, after_5k * 5 / 4) << "disk use kept growing: " << after_5k << " -> "
                                         << after_10k;

  auto stub = hookfan.NewStub();
  v1::SubscribeRequest from_one;
  from_one.mutable_start()->set_after_sequence(0);  // sequence 1 on
  StreamCollector late(stub.get(), from_one);
  grpc::Status status = late.WaitForEnd();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_THAT(status.error_message(), HasSubstr("the oldest event held is sequence 9001"));

  v1::SubscribeRequest earliest;
  earliest.mutable_start()->set_earliest(true);
  StreamCollector held(stub.get(), earliest);
  ASSERT_TRUE(held.WaitFor(1000));
  EXPECT_EQ(held.events().front().sequence(), 9001u);
  EXPECT_EQ(held.events().back().sequence(), 10000u);
}

}  // namespace
}  // namespace hookfan::testing
