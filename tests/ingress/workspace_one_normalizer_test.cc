#include "ingress/workspace_one_normalizer.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "core/event_rules.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hookfan/v1/event.pb.h"
#include "ingress/normalizer.h"
#include "tests/fixtures.h"
#include "tests/proto_matchers.h"

namespace hookfan::ingress {
namespace {

using ::hookfan::testing::EqualsProto;
using ::hookfan::v1::Event;
using ::testing::HasSubstr;

std::string ReadFixture(const std::string& name) {
  return hookfan::testing::ReadFixtureFile("workspace_one/" + name + ".json");
}

// Normalizes a fixture and checks data holds its bytes, then returns the
// event without data so the rest compares as text.
Event NormalizeFixture(const std::string& name) {
  const std::string body = ReadFixture(name);
  absl::StatusOr<Event> event = NormalizeWorkspaceOne(body);
  EXPECT_TRUE(event.ok()) << event.status();
  if (!event.ok()) return Event();
  EXPECT_EQ(event->data(), body);
  event->clear_data();
  return *std::move(event);
}

TEST(WorkspaceOneNormalizerTest, ComplianceStatusChangedMapsEveryField) {
  // The Mac of ../jamf_pro/computer_added.json: its UDID in Apple's spelling.
  EXPECT_THAT(NormalizeFixture("compliance_status_changed"), EqualsProto(R"pb(
    source: "/webhooks/workspace_one"
    type: "workspace_one.device.compliance_status_changed"
    subject: "devices/10482"
    platform: PLATFORM_APPLE
    action: "Compliance Status Changed"
    key: "0A4C5E2B-7F31-4D8E-9B62-3C1D5A7E9F04"
    data_content_type: "application/json"
    source_time { seconds: 1796026443 nanos: 572012500 }
    device {
      provider: "workspace_one"
      id: "10482"
      serial_number: "C02HF1ZKQ6L4"
      udid: "0A4C5E2B-7F31-4D8E-9B62-3C1D5A7E9F04"
      name: "Build Mac 07"
      platform: PLATFORM_APPLE
      os_version: "14.4.1"
      user: "ana.ruiz"
    }
    workspace_one {
      event_code: 662
      event_type: "Compliance Status Changed"
      device_id: 10482
      enrollment_status: "Enrolled"
      compliance_status: "NonCompliant"
      compromised_time { seconds: 1796026444 nanos: 102075700 }
      platform: "AppleOsX"
      ownership: "CorporateDedicated"
      organization_group: "Build Farm"
      enrollment_email: "ana.ruiz@example.com"
      enrollment_user_name: "ana.ruiz"
      enrollment_user_id: 455002
      enrollment_user_uuid: "a9b7786f-3c2d-4e1f-8a6b-5d4c3b2a1908"
      device_uuid: "7caaee42-51d1-4c4a-9a0e-4d7a3f1b2c90"
      asset_number: "IT-0731"
      mac_address: "000000000000"
    })pb"));
}

TEST(WorkspaceOneNormalizerTest, AnAndroidDeviceKeepsItsUdidAsSentAndTheEmailIsItsUser) {
  const Event event = NormalizeFixture("mdm_enrollment_complete");
  EXPECT_EQ(event.type(), "workspace_one.device.enrolled");
  EXPECT_EQ(event.platform(), v1::PLATFORM_ANDROID);
  EXPECT_EQ(event.device().udid(), "5c1d9e0f3a7b4e2d8c6f1a0b9e8d7c6b");
  EXPECT_EQ(event.device().serial_number(), "R58N91ABCDE");
  EXPECT_EQ(event.device().user(), "scanners@example.com");
  EXPECT_EQ(event.key(), "5c1d9e0f3a7b4e2d8c6f1a0b9e8d7c6b");
  EXPECT_EQ(event.workspace_one().imei(), "356938035643809");
  EXPECT_EQ(event.workspace_one().sim_mcc(), "214");
  EXPECT_EQ(event.workspace_one().organization_group(), "Warehouse ");
  EXPECT_EQ(event.source_time().nanos(), 671450000);
}

TEST(WorkspaceOneNormalizerTest, AnIphoneUdidGetsBackItsDashInUppercase) {
  const Event event = NormalizeFixture("compromised_status_changed_iphone");
  EXPECT_EQ(event.type(), "workspace_one.device.compromised_status_changed");
  EXPECT_EQ(event.device().udid(), "00008030-001A2B3C4D5E6F70");
  EXPECT_EQ(event.workspace_one().compromised_status(), "Compromised");
  EXPECT_EQ(event.workspace_one().phone_number(), "+34600111222");
}

// An Apple UDID sent with dashes or in lowercase gets Apple's spelling too;
// a value that is not 32 or 24 hex digits is kept as sent.
TEST(WorkspaceOneNormalizerTest, AppleUdidsGetApplesSpellingWhateverTheirDashesAndCase) {
  auto udid = [](const std::string& sent) {
    absl::StatusOr<Event> event = NormalizeWorkspaceOne(absl::StrCat(
        R"({"EventType": "Compliance Status Changed", "Platform": "Apple", "Udid": ")", sent,
        R"("})"));
    EXPECT_TRUE(event.ok()) << event.status();
    return event.ok() ? event->device().udid() : "";
  };
  EXPECT_EQ(udid("0a4c5e2b-7f31-4d8e-9b62-3c1d5a7e9f04"), "0A4C5E2B-7F31-4D8E-9B62-3C1D5A7E9F04");
  EXPECT_EQ(udid("00008030-001a2b3c4d5e6f70"), "00008030-001A2B3C4D5E6F70");
  EXPECT_EQ(udid("00008030001a2b3c4d5e6f70"), "00008030-001A2B3C4D5E6F70");
  EXPECT_EQ(udid("not-a-udid"), "not-a-udid");
  EXPECT_EQ(udid("0a4c5e2b-7f31-4d8e-9b62-3c1d5a7e9f0"), "0a4c5e2b-7f31-4d8e-9b62-3c1d5a7e9f0");
}

TEST(WorkspaceOneNormalizerTest, WindowsAssetNumber) {
  const Event event = NormalizeFixture("asset_number_windows");
  EXPECT_EQ(event.type(), "workspace_one.device.asset_number_changed");
  EXPECT_EQ(event.platform(), v1::PLATFORM_WINDOWS);
  EXPECT_EQ(event.device().udid(), "9E8D7C6B5A4948372615049382716059");  // not Apple: as sent
  EXPECT_EQ(event.workspace_one().event_code(), 641);
}

TEST(WorkspaceOneNormalizerTest, LegacyBodyWithDotNetDatesAndJunkUdid) {
  const Event event = NormalizeFixture("legacy_mdm_enrollment_complete");
  EXPECT_EQ(event.type(), "workspace_one.device.enrolled");
  EXPECT_EQ(event.action(), "MDMEnrollmentComplete");
  EXPECT_EQ(event.source_time().seconds(), 1391182403);
  EXPECT_EQ(event.source_time().nanos(), 986000000);
  EXPECT_EQ(event.workspace_one().compromised_time().seconds(), 1391182404);
  EXPECT_EQ(event.device().udid(), "");  // "System.Byte[]" is no UDID
  EXPECT_EQ(event.device().serial_number(), "41062e0d324290d9");
  EXPECT_EQ(event.platform(), v1::PLATFORM_UNSPECIFIED);
  EXPECT_EQ(event.key(), "41062e0d324290d9");
}

TEST(WorkspaceOneNormalizerTest, EventTypesCompareWithoutSpacesInAnyCase) {
  for (const auto& [event_type, type] : std::vector<std::pair<std::string, std::string>>{
           {"MDM Enrollment Complete", "workspace_one.device.enrolled"},
           {"Enrollment Complete", "workspace_one.device.enrolled"},
           {"BreakMDMConfirmed", "workspace_one.device.unenrolled"},
           {"Break MDM Confirmed", "workspace_one.device.unenrolled"},
           {"DeviceEnterpriseWipeRequested", "workspace_one.device.enterprise_wipe_requested"},
           {"CompromisedStatusChanged", "workspace_one.device.compromised_status_changed"},
           {"compliance status changed", "workspace_one.device.compliance_status_changed"},
           {"Device Operating System Changed", "workspace_one.device.os_changed"},
           {"Device Organization Group Changed", "workspace_one.device.organization_group_changed"},
           {"Device MCC", "workspace_one.device.mcc_changed"},
           {"Device Friendly Name", "workspace_one.device.name_changed"},
           {"User Email Address", "workspace_one.device.user_email_changed"},
           {"Ownership", "workspace_one.device.ownership_changed"},
           {"Phone Number", "workspace_one.device.phone_number_changed"},
           {"Device Delete", "workspace_one.unrecognized"},
       }) {
    absl::StatusOr<Event> event = NormalizeWorkspaceOne(
        R"({"EventId": 1, "EventType": ")" + event_type + R"(", "DeviceId": 5})");
    ASSERT_TRUE(event.ok()) << event.status();
    EXPECT_EQ(event->type(), type) << event_type;
    EXPECT_TRUE(broker::IsValidEventType(event->type())) << event->type();
    EXPECT_EQ(event->action(), event_type);
    // Even an unknown kind names its device and keeps its typed payload.
    EXPECT_EQ(event->device().id(), "5");
    EXPECT_EQ(event->workspace_one().event_type(), event_type);
    EXPECT_EQ(event->key(), "devices/5");  // no UDID or serial: the subject
  }
}

TEST(WorkspaceOneNormalizerTest, OnlyEventTypeIsRequiredAndOtherTypesReadAsAbsent) {
  absl::StatusOr<Event> event = NormalizeWorkspaceOne(
      R"({"EventType": "Device MCC", "DeviceId": "31", "EventTime": "yesterday",
          "Udid": 7, "SerialNumber": null, "Platform": ["Apple"]})");
  ASSERT_TRUE(event.ok()) << event.status();
  EXPECT_EQ(event->device().id(), "31");  // a quoted number is still the id
  EXPECT_FALSE(event->has_source_time());
  EXPECT_EQ(event->device().udid(), "");
  EXPECT_EQ(event->platform(), v1::PLATFORM_UNSPECIFIED);

  absl::StatusOr<Event> bare = NormalizeWorkspaceOne(R"({"EventType": "Device MCC"})");
  ASSERT_TRUE(bare.ok()) << bare.status();
  EXPECT_FALSE(bare->has_device());
  EXPECT_EQ(bare->subject(), "");
  EXPECT_EQ(bare->key(), "");
}

TEST(WorkspaceOneNormalizerTest, RefusalsSayWhy) {
  EXPECT_THAT(NormalizeWorkspaceOne("<Eventlog/>").status().message(),
              HasSubstr("body is not valid JSON"));
  EXPECT_EQ(NormalizeWorkspaceOne("[]").status().message(), "body must be a JSON object, got array");
  EXPECT_EQ(NormalizeWorkspaceOne(R"({"EventId": 148})").status().message(),
            "missing required field \"EventType\"");
  EXPECT_EQ(NormalizeWorkspaceOne(R"({"EventType": 148})").status().message(),
            "field \"EventType\" must be a string, got number");
  EXPECT_EQ(NormalizeWorkspaceOne(R"({"EventType": ""})").status().message(),
            "field \"EventType\" must not be empty");
  EXPECT_EQ(NormalizeWorkspaceOne("{}").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(WorkspaceOneNormalizerTest, KindAnswersXmlWithTheSettingToChange) {
  const NormalizerKind* kind = FindNormalizerKind("workspace_one");
  ASSERT_NE(kind, nullptr);
  EXPECT_EQ(kind->success_status, 200);
  EXPECT_TRUE(kind->answers_get);
  const SourceConfig source{.name = "wsone", .path = "/webhooks/wsone", .normalizer = "workspace_one"};
  EXPECT_EQ(DefaultDedup(source).key, DedupKey::kBodyHash);
  EXPECT_FALSE(HasEventId(source));
  const std::unique_ptr<Normalizer> normalizer = kind->create(source);
  auto header = [](std::string_view) -> std::optional<std::string_view> { return std::nullopt; };
  absl::StatusOr<Event> xml = normalizer->Normalize(
      {.content_type = "application/xml", .header = header, .header_names = {}, .body = "<Eventlog/>"});
  EXPECT_EQ(xml.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(xml.status().message(), HasSubstr("choose JSON"));
  absl::StatusOr<Event> json = normalizer->Normalize({.content_type = "application/json; charset=utf-8",
                                                      .header = header,
                                                      .header_names = {},
                                                      .body = ReadFixture("asset_number_windows")});
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(json->source(), "/webhooks/wsone");
}

}  // namespace
}  // namespace hookfan::ingress
