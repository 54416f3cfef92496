#include "ingress/jamf_pro_normalizer.h"

#include <memory>
#include <string>
#include <utility>

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
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kUdid[] = "0A4C5E2B-7F31-4D8E-9B62-3C1D5A7E9F04";
constexpr char kSerial[] = "C02HF1ZKQ6L4";

std::string ReadFixture(const std::string& name) {
  return hookfan::testing::ReadFixtureFile("jamf_pro/" + name + ".json");
}

// Normalizes a fixture, checks data holds its bytes and the payload keeps
// the event object, then returns the event without both so the rest
// compares as text.
Event NormalizeFixture(const std::string& name) {
  const std::string body = ReadFixture(name);
  absl::StatusOr<Event> event = NormalizeJamfPro(body);
  EXPECT_TRUE(event.ok()) << event.status();
  if (!event.ok()) return Event();
  EXPECT_EQ(event->data(), body);
  EXPECT_FALSE(event->jamf_pro().event().fields().empty());
  event->clear_data();
  event->mutable_jamf_pro()->clear_event();
  return *std::move(event);
}

// The device of the computer in computer_added.json and computer_check_in.json.
std::string ComputerDevice() {
  return absl::StrCat(R"pb(
    device {
      provider: "jamf_pro"
      id: "217"
      serial_number: ")pb", kSerial, R"pb("
      udid: ")pb", kUdid, R"pb("
      name: "Build Mac 07"
      platform: PLATFORM_APPLE
      os_version: "14.4.1"
      user: "ana.ruiz"
    })pb");
}

TEST(JamfProNormalizerTest, ComputerAddedMapsEveryField) {
  EXPECT_THAT(NormalizeFixture("computer_added"), EqualsProto(absl::StrCat(R"pb(
    source: "/webhooks/jamf_pro"
    type: "jamf_pro.computer.added"
    subject: "computers/217"
    platform: PLATFORM_APPLE
    action: "ComputerAdded"
    key: ")pb", kUdid, R"pb("
    data_content_type: "application/json"
    source_time { seconds: 1796030043 nanos: 418000000 })pb", ComputerDevice(), R"pb(
    jamf_pro {
      webhook_id: 4
      webhook_name: "hookfan computers"
      webhook_event: "ComputerAdded"
      jss_id: 217
      computer: true
    })pb")));
}

TEST(JamfProNormalizerTest, CheckInReadsTheNestedComputer) {
  const Event event = NormalizeFixture("computer_check_in");
  EXPECT_EQ(event.type(), "jamf_pro.computer.checked_in");
  EXPECT_THAT(event, EqualsProto(absl::StrCat(R"pb(
    source: "/webhooks/jamf_pro"
    type: "jamf_pro.computer.checked_in"
    subject: "computers/217"
    platform: PLATFORM_APPLE
    action: "ComputerCheckIn"
    key: ")pb", kUdid, R"pb("
    data_content_type: "application/json"
    source_time { seconds: 1796030105 nanos: 2000000 })pb", ComputerDevice(), R"pb(
    jamf_pro {
      webhook_id: 5
      webhook_name: "hookfan check-ins"
      webhook_event: "ComputerCheckIn"
      jss_id: 217
      computer: true
      trigger: "CLIENT_CHECKIN"
    })pb")));
}

TEST(JamfProNormalizerTest, OlderFlatPolicyFinishedIsReadToo) {
  const Event event = NormalizeFixture("computer_policy_finished_flat");
  EXPECT_EQ(event.type(), "jamf_pro.computer.policy_finished");
  EXPECT_EQ(event.jamf_pro().policy_id(), 38);
  EXPECT_TRUE(event.jamf_pro().has_successful());
  EXPECT_TRUE(event.jamf_pro().successful());
  EXPECT_EQ(event.device().serial_number(), kSerial);
  EXPECT_EQ(event.key(), kUdid);
}

TEST(JamfProNormalizerTest, MobileDeviceEnrolled) {
  const Event event = NormalizeFixture("mobile_device_enrolled");
  EXPECT_EQ(event.type(), "jamf_pro.mobile_device.enrolled");
  EXPECT_EQ(event.subject(), "mobile-devices/88");
  EXPECT_FALSE(event.jamf_pro().computer());
  EXPECT_TRUE(event.jamf_pro().has_computer());
  EXPECT_EQ(event.device().udid(), "00008101-000A1B2C3D4E5F60");
  EXPECT_EQ(event.device().serial_number(), "DMPXK2Q7LQ");
  EXPECT_EQ(event.device().name(), "Field iPad 12");
  EXPECT_EQ(event.device().user(), "");  // no username, no e-mail
}

TEST(JamfProNormalizerTest, SmartGroupChangeNamesTheGroupAndItsMembers) {
  const Event event = NormalizeFixture("smart_group_computer_membership_change");
  EXPECT_EQ(event.type(), "jamf_pro.smart_group.computer_membership_changed");
  EXPECT_EQ(event.subject(), "smart-groups/14");
  EXPECT_EQ(event.key(), "smart-groups/14");
  EXPECT_FALSE(event.has_device());
  EXPECT_EQ(event.jamf_pro().group_name(), "macOS 14 not patched");
  EXPECT_THAT(event.jamf_pro().added_ids(), ElementsAre(217, 219));
  EXPECT_THAT(event.jamf_pro().removed_ids(), ElementsAre(112));
}

TEST(JamfProNormalizerTest, DeviceAddedToDepIsKeyedBySerial) {
  const Event event = NormalizeFixture("device_added_to_dep");
  EXPECT_EQ(event.type(), "jamf_pro.dep_device.added");
  EXPECT_EQ(event.subject(), "dep-devices/FVFK3LQ1Q6L8");
  EXPECT_EQ(event.key(), "FVFK3LQ1Q6L8");
  EXPECT_EQ(event.device().serial_number(), "FVFK3LQ1Q6L8");
  EXPECT_EQ(event.device().id(), "");
}

TEST(JamfProNormalizerTest, ServerApiAndPatchEventsNameNoDevice) {
  Event event = NormalizeFixture("jss_startup");
  EXPECT_EQ(event.type(), "jamf_pro.server.started");
  EXPECT_FALSE(event.has_device());
  EXPECT_EQ(event.platform(), v1::PLATFORM_UNSPECIFIED);
  EXPECT_EQ(event.key(), "");

  event = NormalizeFixture("rest_api_operation");
  EXPECT_EQ(event.type(), "jamf_pro.api_operation.performed");
  EXPECT_EQ(event.jamf_pro().jss_id(), 217);
  EXPECT_TRUE(event.jamf_pro().successful());

  event = NormalizeFixture("patch_software_title_updated");
  EXPECT_EQ(event.type(), "jamf_pro.patch_software_title.updated");
  EXPECT_EQ(event.subject(), "patch-software-titles/31");
}

TEST(JamfProNormalizerTest, EveryListedEventHasAValidType) {
  for (const char* name :
       {"ComputerAdded", "ComputerCheckIn", "ComputerInventoryCompleted",
        "ComputerPatchPolicyCompleted", "ComputerPolicyFinished", "ComputerPushCapabilityChanged",
        "DeviceAddedToDEP", "DeviceRateLimited", "JSSShutdown", "JSSStartup",
        "MobileDeviceCheckIn", "MobileDeviceCommandCompleted", "MobileDeviceEnrolled",
        "MobileDeviceInventoryCompleted", "MobileDevicePushSent", "MobileDeviceUnEnrolled",
        "PatchSoftwareTitleUpdated", "PushSent", "RestAPIOperation",
        "SmartGroupComputerMembershipChange", "SmartGroupMobileDeviceMembershipChange",
        "SmartGroupUserMembershipChange", "SomethingJamfAddsLater"}) {
    absl::StatusOr<Event> event = NormalizeJamfPro(
        absl::StrCat(R"({"event":{},"webhook":{"id":1,"webhookEvent":")", name, R"("}})"));
    ASSERT_TRUE(event.ok()) << name << ": " << event.status();
    EXPECT_TRUE(broker::IsValidEventType(event->type())) << event->type();
    EXPECT_TRUE(event->type().starts_with("jamf_pro.")) << event->type();
    EXPECT_EQ(event->type() == "jamf_pro.unrecognized",
              std::string(name) == "SomethingJamfAddsLater")
        << name;
    EXPECT_EQ(event->action(), name);
    EXPECT_FALSE(event->has_source_time());
  }
}

TEST(JamfProNormalizerTest, EventTimestampInSecondsIsReadAsSeconds) {
  absl::StatusOr<Event> event = NormalizeJamfPro(
      R"({"event":{},"webhook":{"webhookEvent":"PushSent","eventTimestamp":1796031700}})");
  ASSERT_TRUE(event.ok());
  EXPECT_EQ(event->source_time().seconds(), 1796031700);
  EXPECT_EQ(event->source_time().nanos(), 0);
}

TEST(JamfProNormalizerTest, ScepChallengeIsRefusedAndSaysWhy) {
  const absl::Status status = NormalizeJamfPro(ReadFixture("scep_challenge")).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("SCEPChallenge asks for a SCEP challenge"));
}

TEST(JamfProNormalizerTest, BadBodiesAreRefusedNamingTheProblem) {
  auto refused = [](const std::string& body) { return NormalizeJamfPro(body).status(); };
  EXPECT_EQ(refused("[]"), absl::InvalidArgumentError("body must be a JSON object, got array"));
  EXPECT_EQ(refused(R"({"event":{}})"),
            absl::InvalidArgumentError("missing required object \"webhook\""));
  EXPECT_EQ(refused(R"({"webhook":"x"})"),
            absl::InvalidArgumentError("field \"webhook\" must be an object, got string"));
  EXPECT_EQ(refused(R"({"webhook":{}})"),
            absl::InvalidArgumentError("missing required field \"webhook.webhookEvent\""));
  EXPECT_EQ(refused(R"({"webhook":{"webhookEvent":7}})"),
            absl::InvalidArgumentError(
                "field \"webhook.webhookEvent\" must be a string, got number"));
  EXPECT_EQ(refused(R"({"webhook":{"webhookEvent":""}})"),
            absl::InvalidArgumentError("field \"webhook.webhookEvent\" must not be empty"));
}

TEST(JamfProNormalizerTest, XmlIsRefusedSayingToChooseJson) {
  const SourceConfig config{.name = "jamf", .path = "/webhooks/jamf", .normalizer = "jamf_pro"};
  EXPECT_EQ(SuccessStatus(config), 200);
  EXPECT_FALSE(HasEventId(config));
  EXPECT_EQ(DefaultDedup(config).key, DedupKey::kBodyHash);
  std::unique_ptr<Normalizer> normalizer = FindNormalizerKind("jamf_pro")->create(config);
  const HeaderLookup no_headers;
  const absl::Status xml =
      normalizer->Normalize({.content_type = "text/xml", .header = no_headers, .header_names = {}, .body = "<JSSEvent/>"})
          .status();
  EXPECT_EQ(xml.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(xml.message(), HasSubstr("got \"text/xml\""));
  EXPECT_THAT(xml.message(), HasSubstr("choose JSON"));
  absl::StatusOr<Event> json = normalizer->Normalize(
      {.content_type = "application/json", .header = no_headers, .header_names = {}, .body = ReadFixture("jss_startup")});
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(json->source(), "/webhooks/jamf");
}

}  // namespace
}  // namespace hookfan::ingress
