// End-to-end: GET /metrics after traffic, checked by promtool.

#include <httplib.h>

#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/hookfan_process.h"

namespace hookfan::testing {
namespace {

using ::testing::HasSubstr;

TEST(MetricsE2ETest, ScrapeAfterTrafficCountsItAndPassesPromtool) {
  std::string dir = MakeTempDir();
  HookfanProcess p({.data_dir = dir});
  ASSERT_TRUE(p.Start());
  auto stub = p.NewStub();
  v1::SubscribeRequest request;
  request.mutable_start()->set_earliest(true);
  StreamCollector subscriber(stub.get(), request);
  for (const char* f : {"emm_device_enrolled.json", "win_device_added_mdm_user.json"}) {
    ASSERT_EQ(p.PostWebhook(ReadFixture(f)), 202);
  }
  httplib::Client http("127.0.0.1", p.http_port());
  ASSERT_EQ(http.Post("/webhooks/applivery/wrong", "{}", "application/json")->status, 404);
  ASSERT_TRUE(subscriber.WaitFor(2));

  auto res = http.Get("/metrics");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  EXPECT_THAT(res->get_header_value("Content-Type"), HasSubstr("text/plain; version=0.0.4"));
  const std::string& text = res->body;
  EXPECT_THAT(text, HasSubstr("hookfan_webhooks_total{code=\"202\",source=\"applivery\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("hookfan_webhooks_total{code=\"404\",source=\"applivery\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("hookfan_append_duration_seconds_count 2\n"));
  EXPECT_THAT(text, HasSubstr("hookfan_events_appended_total 2\n"));
  EXPECT_THAT(text, HasSubstr("hookfan_subscriptions 1\n"));
  EXPECT_THAT(text, HasSubstr("hookfan_delivered_events_total 2\n"));

  if (RunCommand("command -v promtool").exit_code != 0) {
    GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  }
  std::string file = dir + "/metrics.txt";
  std::ofstream(file) << text;
  CommandResult check = RunCommand("promtool check metrics < " + file);
  EXPECT_EQ(check.exit_code, 0) << check.output;
}

}  // namespace
}  // namespace hookfan::testing
