// End-to-end checks of the two binaries' command lines: hookfan --help and
// env, hookfan-tail output and errors.

#include <httplib.h>

#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/hookfan_process.h"

namespace hookfan::testing {
namespace {

using ::testing::HasSubstr;

TEST(HookfanCliTest, HelpListsTheFlagsAndTheirEnvironmentVariables) {
  CommandResult r = RunCommand(std::string(HOOKFAN_BINARY) + " --help");
  for (const char* flag : {"http_listen", "grpc_listen", "data_dir", "applivery_token",
                           "HOOKFAN_APPLIVERY_TOKEN", "HOOKFAN_DATA_DIR"}) {
    EXPECT_THAT(r.output, HasSubstr(flag));
  }
}

TEST(HookfanCliTest, BadEnvironmentValueStopsStartup) {
  CommandResult r = RunCommand(std::string("HOOKFAN_MAX_BODY_BYTES=lots ") + HOOKFAN_BINARY);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("HOOKFAN_MAX_BODY_BYTES=\"lots\""));
}

TEST(HookfanCliTest, PortInUseFailsWithAClearError) {
  std::string dir = MakeTempDir();
  HookfanProcess first({.data_dir = dir});
  ASSERT_TRUE(first.Start());
  CommandResult r = RunCommand(std::string(HOOKFAN_BINARY) + " --data-dir " + MakeTempDir() +
                     " --http-listen 127.0.0.1:0 --grpc-listen " + first.grpc_address());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("cannot listen for gRPC on " + first.grpc_address()));
}

TEST(HookfanCliTest, GeneratesAndLogsATokenWhenNoneIsSet) {
  // Without a token hookfan makes one and logs the full URL, which then works.
  std::string dir = MakeTempDir();
  HookfanProcess p({.data_dir = dir, .token = ""});
  ASSERT_TRUE(p.Start());
  std::string url;
  for (const std::string& line : p.Lines()) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("webhook_url")) url = j["webhook_url"];
  }
  ASSERT_THAT(url, HasSubstr("/webhooks/applivery/"));
  std::string path = url.substr(url.find("/webhooks/"));
  EXPECT_EQ(path.size(), std::string("/webhooks/applivery/").size() + 32);
  httplib::Client c("127.0.0.1", p.http_port());
  auto res = c.Post(path, ReadFixture("emm_device_enrolled.json"), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 202);
}

TEST(HookfanTailTest, PrintsOneJsonEventPerLineAndStopsAtMax) {
  std::string dir = MakeTempDir();
  HookfanProcess p({.data_dir = dir});
  ASSERT_TRUE(p.Start());
  httplib::Client c("127.0.0.1", p.http_port());
  for (const char* f : {"emm_device_enrolled.json", "win_device_added_mdm_user.json",
                        "apple_push_certification_renovation.json"}) {
    ASSERT_EQ(c.Post(p.webhook_path(), ReadFixture(f), "application/json")->status, 202);
  }
  CommandResult r = RunCommand(std::string(HOOKFAN_TAIL_BINARY) + " --server " + p.grpc_address() +
                     " --from earliest --type 'applivery.device.*' --max 2");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::vector<nlohmann::json> lines;
  size_t start = 0;
  while (start < r.output.size()) {
    size_t nl = r.output.find('\n', start);
    lines.push_back(nlohmann::json::parse(r.output.substr(start, nl - start)));
    start = nl + 1;
  }
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["type"], "applivery.device.enrolled");
  EXPECT_EQ(lines[0]["platform"], "PLATFORM_ANDROID");
  EXPECT_EQ(lines[0]["sequence"], "1");
  EXPECT_EQ(lines[1]["type"], "applivery.device.user_assigned");
  EXPECT_EQ(lines[1]["action"], "win_device_added_mdm_user");
  // The webhook body is shown as the JSON it is, not base64.
  EXPECT_EQ(lines[0]["body"], nlohmann::json::parse(ReadFixture("emm_device_enrolled.json")));
  EXPECT_FALSE(lines[0].contains("data"));

  CommandResult from = RunCommand(std::string(HOOKFAN_TAIL_BINARY) + " --server " + p.grpc_address() +
                        " --from 3 --max 1");
  EXPECT_THAT(from.output, HasSubstr("\"type\":\"applivery.apns_certificate.expiring\""));
}

TEST(HookfanTailTest, BodyBase64PrintsTheExactProtobufMapping) {
  // --body base64: the body as protobuf's JSON mapping has it, base64 in "data".
  std::string dir = MakeTempDir();
  HookfanProcess p({.data_dir = dir});
  ASSERT_TRUE(p.Start());
  const std::string body = ReadFixture("emm_device_enrolled.json");
  ASSERT_EQ(p.PostWebhook(body), 202);
  CommandResult r = RunCommand(std::string(HOOKFAN_TAIL_BINARY) + " --server " +
                               p.grpc_address() + " --from earliest --max 1 --body base64");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json line = nlohmann::json::parse(r.output, nullptr, false);
  ASSERT_TRUE(line.is_object()) << r.output;
  EXPECT_FALSE(line.contains("body"));
  std::string data;
  ASSERT_TRUE(absl::Base64Unescape(line.value("data", ""), &data)) << r.output;
  EXPECT_EQ(data, body);
}

TEST(HookfanTailTest, PrettyOutputIsOneAlignedLinePerEventColouredOnlyWhenAsked) {
  std::string dir = MakeTempDir();
  HookfanProcess p({.data_dir = dir});
  ASSERT_TRUE(p.Start());
  ASSERT_EQ(p.PostWebhook(ReadFixture("emm_device_enrolled.json")), 202);
  std::string tail = std::string(HOOKFAN_TAIL_BINARY) + " --server " + p.grpc_address() +
                     " --from earliest --max 1 --output pretty";
  CommandResult plain = RunCommand(tail);  // piped: no colour by default
  EXPECT_EQ(plain.exit_code, 0) << plain.output;
  EXPECT_THAT(plain.output, ::testing::MatchesRegex(
                                "#1 +[0-9T:-]+Z  applivery.device.enrolled +android +"
                                "Applivery Test  devices/5f634c11034824062256e38c  "
                                "\\(emm_device_enrolled\\)  trace [0-9a-f]{32}\n"));
  CommandResult coloured = RunCommand(tail + " --color always");
  EXPECT_THAT(coloured.output, HasSubstr("\x1b[1;36mapplivery.device.enrolled"));
}

TEST(HookfanTailTest, KeepsStreamingAcrossAServerRestart) {
  // The tail resumes after a drain and restart on the same port: no gap, no duplicate.
  std::string dir = MakeTempDir();
  auto p = std::make_unique<HookfanProcess>(HookfanProcess::Options{.data_dir = dir});
  ASSERT_TRUE(p->Start());
  std::string address = p->grpc_address();
  std::string body = ReadFixture("emm_device_enrolled.json");
  ASSERT_EQ(p->PostWebhook(body), 202);
  CommandResult result;
  std::thread tail([&] {
    result = RunCommand("timeout 30 " + std::string(HOOKFAN_TAIL_BINARY) + " --server " +
                        address + " --from earliest --max 2 --output json");
  });
  absl::Cleanup join = [&] { tail.join(); };
  // The drain must find the tail's stream open and event 1 handed to it.
  ASSERT_TRUE(Eventually(
      [&] {
        return Metric(*p, "hookfan_subscriptions") == 1 &&
               Metric(*p, "hookfan_delivered_events_total") >= 1;
      },
      absl::Seconds(30)));
  ASSERT_EQ(p->Terminate(), 0);
  p = std::make_unique<HookfanProcess>(HookfanProcess::Options{
      .data_dir = dir, .extra_args = {"--grpc-listen=" + address}});
  ASSERT_TRUE(p->Start());
  ASSERT_EQ(p->PostWebhook(ReadFixture("win_device_added_mdm_user.json")), 202);
  std::move(join).Invoke();
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("\"sequence\":\"1\""));
  EXPECT_THAT(result.output, HasSubstr("\"sequence\":\"2\""));
  EXPECT_THAT(result.output, HasSubstr("hookfan-tail: subscription ended: UNAVAILABLE"));
}

TEST(HookfanTailTest, UnreachableServerExitsNonZeroWithMessage) {
  CommandResult r = RunCommand(std::string(HOOKFAN_TAIL_BINARY) +
                     " --server 127.0.0.1:1 --connect-timeout 1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("cannot connect to 127.0.0.1:1"));
}

TEST(HookfanTailTest, RefusedFilterExitsNonZeroWithTheServersReason) {
  std::string dir = MakeTempDir();
  HookfanProcess p({.data_dir = dir});
  ASSERT_TRUE(p.Start());
  CommandResult r = RunCommand(std::string(HOOKFAN_TAIL_BINARY) + " --server " + p.grpc_address() +
                     " --type 'a.>.b'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("must be the last token"));
}

TEST(HookfanTailTest, BadFlagsExitTwoWithUsage) {
  CommandResult r = RunCommand(std::string(HOOKFAN_TAIL_BINARY) + " --platform beos");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("unknown platform \"beos\""));
  EXPECT_THAT(r.output, HasSubstr("Usage: hookfan-tail"));
}

}  // namespace
}  // namespace hookfan::testing
