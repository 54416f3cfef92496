#include "ingress/nanomdm_normalizer.h"

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
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

constexpr char kUdid[] = "0A4C5E2B-7F31-4D8E-9B62-3C1D5A7E9F04";

std::string ReadFixture(const std::string& name) {
  return hookfan::testing::ReadFixtureFile("nanomdm/" + name + ".json");
}

Event Normalize(const std::string& body) {
  absl::StatusOr<Event> event = NormalizeNanoMdm(body);
  EXPECT_TRUE(event.ok()) << event.status() << "\nbody: " << body;
  return event.ok() ? *std::move(event) : Event();
}

// Normalizes a fixture, checks data holds its bytes and that the typed
// payload's raw_payload is a property list of `message_type`, then returns
// the event without data and raw_payload so the rest compares as text.
Event NormalizeFixture(const std::string& name, const std::string& message_type) {
  const std::string body = ReadFixture(name);
  Event event = Normalize(body);
  EXPECT_EQ(event.data(), body);
  event.clear_data();
  std::string* raw = event.has_apple_mdm_checkin()
                         ? event.mutable_apple_mdm_checkin()->mutable_raw_payload()
                         : event.mutable_apple_mdm_command_report()->mutable_raw_payload();
  EXPECT_THAT(*raw, HasSubstr("<plist version=\"1.0\">"));
  EXPECT_THAT(*raw, HasSubstr(message_type));
  raw->clear();
  return event;
}

TEST(NanoMdmNormalizerTest, AuthenticateMapsEveryField) {
  // NanoMDM sends no event_id; the UDID names and keys the device, and the
  // Authenticate message's property list gives its serial number, name and
  // OS version.
  EXPECT_THAT(NormalizeFixture("authenticate", "<string>Authenticate</string>"),
              EqualsProto(absl::StrCat(R"pb(
                source: "/webhooks/nanomdm"
                type: "nanomdm.device.authenticated"
                subject: "devices/)pb", kUdid, R"pb("
                platform: PLATFORM_APPLE
                action: "mdm.Authenticate"
                key: ")pb", kUdid, R"pb("
                data_content_type: "application/json"
                source_time { seconds: 1796030043 nanos: 418273915 }
                device {
                  provider: "nanomdm"
                  id: ")pb", kUdid, R"pb("
                  udid: ")pb", kUdid, R"pb("
                  serial_number: "C02HF1ZKQ6L4"
                  name: "Build Mac 07"
                  platform: PLATFORM_APPLE
                  os_version: "14.4.1"
                }
                apple_mdm_checkin {
                  topic: "mdm.Authenticate"
                  udid: ")pb", kUdid, R"pb("
                  enrollment_id: ")pb", kUdid, R"pb("
                }
              )pb")));
}

TEST(NanoMdmNormalizerTest, TokenUpdateKeepsTheTallyAndUrlParams) {
  const Event event = NormalizeFixture("token_update", "<string>TokenUpdate</string>");
  EXPECT_EQ(event.type(), "nanomdm.device.token_updated");
  EXPECT_EQ(event.apple_mdm_checkin().token_update_tally(), 1);
  EXPECT_EQ(event.apple_mdm_checkin().url_params().at("tenant"), "emea");
  EXPECT_EQ(event.device().udid(), kUdid);
  EXPECT_EQ(event.device().serial_number(), "");  // a TokenUpdate names none
}

// The device's identity is read from a check-in's property list when it is
// one (XML or binary), a dictionary, within 64 KiB, and only from string
// values in valid UTF-8; anything else leaves the UDID alone, and the event
// is stored either way.
TEST(NanoMdmNormalizerTest, PropertyListIdentityIsReadOnlyFromWhatParses) {
  auto with_payload = [](const std::string& plist) {
    absl::StatusOr<Event> event = NormalizeNanoMdm(absl::StrCat(
        R"({"topic": "mdm.Authenticate", "checkin_event": {"udid": "U1", "raw_payload": ")",
        absl::Base64Escape(plist), R"("}})"));
    EXPECT_TRUE(event.ok()) << event.status();
    return event.ok() ? *event : Event();
  };
  const std::string dict =
      "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict>"
      "<key>SerialNumber</key><string>F2LXK0N1P3Q4</string>"
      "<key>DeviceName</key><string>Ana\u2019s iPhone</string>"
      "<key>OSVersion</key><integer>17</integer></dict></plist>";
  const Event read = with_payload(dict);
  EXPECT_EQ(read.device().serial_number(), "F2LXK0N1P3Q4");
  EXPECT_EQ(read.device().name(), "Ana\u2019s iPhone");
  EXPECT_EQ(read.device().os_version(), "");  // not a string
  for (const std::string& junk :
       {std::string("not a plist"), std::string("<plist><array><string>x</string></array></plist>"),
        std::string("<plist><dict><key>SerialNumber</key>"),
        std::string("bplist00") + std::string(40, '\xff'),
        std::string("<plist><dict><key>SerialNumber</key><string>\xc3\x28</string></dict></plist>"),
        dict + std::string(64 * 1024, ' ')}) {
    const Event event = with_payload(junk);
    EXPECT_EQ(event.device().udid(), "U1");
    EXPECT_EQ(event.device().serial_number(), "") << junk.substr(0, 60);
  }
}

TEST(NanoMdmNormalizerTest, CheckOutWithoutUrlParams) {
  const Event event = NormalizeFixture("checkout", "<string>CheckOut</string>");
  EXPECT_EQ(event.type(), "nanomdm.device.checked_out");
  EXPECT_TRUE(event.apple_mdm_checkin().url_params().empty());
}

TEST(NanoMdmNormalizerTest, CommandReportMapsEveryField) {
  EXPECT_THAT(NormalizeFixture("command_report", "<key>QueryResponses</key>"),
              EqualsProto(absl::StrCat(R"pb(
                source: "/webhooks/nanomdm"
                type: "nanomdm.command.reported"
                subject: "devices/)pb", kUdid, R"pb("
                platform: PLATFORM_APPLE
                action: "mdm.Connect"
                key: ")pb", kUdid, R"pb("
                data_content_type: "application/json"
                source_time { seconds: 1796030411 nanos: 104562001 }
                device {
                  provider: "nanomdm"
                  id: ")pb", kUdid, R"pb("
                  udid: ")pb", kUdid, R"pb("
                  platform: PLATFORM_APPLE
                }
                apple_mdm_command_report {
                  udid: ")pb", kUdid, R"pb("
                  enrollment_id: ")pb", kUdid, R"pb("
                  command_uuid: "b7e3c1d2-4a5f-4e6b-8c9d-0e1f2a3b4c5d"
                  status: "Acknowledged"
                }
              )pb")));
}

TEST(NanoMdmNormalizerTest, MicroMdmEventIdIsTheSourceEventId) {
  // MicroMDM indents its JSON, sends url_params null and always an event_id.
  const Event event = NormalizeFixture("micromdm_command_report", "<key>ErrorChain</key>");
  EXPECT_EQ(event.type(), "nanomdm.command.reported");
  EXPECT_EQ(event.source_event_id(), "3f9b2c71-8e4d-4a6b-9c0d-1e2f3a4b5c6d");
  EXPECT_EQ(event.apple_mdm_command_report().status(), "Error");
  EXPECT_EQ(event.key(), "00008030-001A2B3C4D5E6F70");
  EXPECT_EQ(event.source_time().nanos(), 512700000);
}

TEST(NanoMdmNormalizerTest, UnknownTopicIsUnrecognizedAndKeepsTheDevice) {
  const std::string body = ReadFixture("unknown_topic");
  const Event event = Normalize(body);
  EXPECT_EQ(event.type(), "nanomdm.unrecognized");
  EXPECT_EQ(event.action(), "mdm.SomethingNew");
  EXPECT_EQ(event.unrecognized().body().fields().at("topic").string_value(), "mdm.SomethingNew");
  EXPECT_EQ(event.device().udid(), kUdid);
  EXPECT_EQ(event.key(), kUdid);
}

TEST(NanoMdmNormalizerTest, EveryDocumentedTopicHasAValidTypeAndPayload) {
  const std::pair<std::string, std::string> kTopics[] = {
      {"mdm.Authenticate", "nanomdm.device.authenticated"},
      {"mdm.TokenUpdate", "nanomdm.device.token_updated"},
      {"mdm.CheckOut", "nanomdm.device.checked_out"},
      {"mdm.UserAuthenticate", "nanomdm.user.authenticated"},
      {"mdm.SetBootstrapToken", "nanomdm.bootstrap_token.set"},
      {"mdm.GetBootstrapToken", "nanomdm.bootstrap_token.requested"},
      {"mdm.DeclarativeManagement", "nanomdm.declarative_management.requested"},
      {"mdm.GetToken", "nanomdm.token.requested"},
      {"mdm.Connect", "nanomdm.command.reported"},
  };
  for (const auto& [topic, type] : kTopics) {
    const bool report = topic == "mdm.Connect";
    const Event event = Normalize(absl::StrCat(
        R"({"topic":")", topic, R"(","created_at":"2026-01-02T03:04:05Z",")",
        report ? "acknowledge_event" : "checkin_event", R"(":{"udid":"U1","raw_payload":"AA=="}})"));
    EXPECT_EQ(event.type(), type) << topic;
    EXPECT_TRUE(broker::IsValidEventType(event.type())) << type;
    EXPECT_EQ(event.payload_case(),
              report ? Event::kAppleMdmCommandReport : Event::kAppleMdmCheckin)
        << topic;
    EXPECT_EQ(event.device().udid(), "U1") << topic;
  }
}

TEST(NanoMdmNormalizerTest, LenientFieldsReadAsEmpty) {
  // Go's zero time is no time; a created_at that is not RFC 3339, a
  // raw_payload that is not base64, a udid of another JSON type and a
  // missing event object all leave their fields empty.
  Event event = Normalize(
      R"({"topic":"mdm.Authenticate","created_at":"0001-01-01T00:00:00Z",)"
      R"("checkin_event":{"udid":7,"enrollment_id":"E1","raw_payload":"%%%"}})");
  EXPECT_FALSE(event.has_source_time());
  EXPECT_TRUE(event.apple_mdm_checkin().raw_payload().empty());
  EXPECT_FALSE(event.has_device());
  EXPECT_EQ(event.subject(), "");
  EXPECT_EQ(event.key(), "E1");  // no UDID: the enrollment id keys the event

  event = Normalize(R"({"topic":"mdm.CheckOut","created_at":"yesterday"})");
  EXPECT_FALSE(event.has_source_time());
  EXPECT_EQ(event.type(), "nanomdm.device.checked_out");
  EXPECT_TRUE(event.has_apple_mdm_checkin());
  EXPECT_EQ(event.key(), "");
}

TEST(NanoMdmNormalizerTest, BadBodiesAreRefusedNamingTheProblem) {
  auto refused = [](const std::string& body) { return NormalizeNanoMdm(body).status(); };
  EXPECT_EQ(refused("[1]"), absl::InvalidArgumentError("body must be a JSON object, got array"));
  EXPECT_EQ(refused("{}"), absl::InvalidArgumentError("missing required field \"topic\""));
  EXPECT_EQ(refused(R"({"topic":3})"),
            absl::InvalidArgumentError("field \"topic\" must be a string, got number"));
  EXPECT_EQ(refused(R"({"topic":""})"),
            absl::InvalidArgumentError("field \"topic\" must not be empty"));
  const absl::Status not_json = refused("{\"topic\":");
  EXPECT_EQ(not_json.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(not_json.message(), HasSubstr("body is not valid JSON: at byte"));
}

TEST(NanoMdmNormalizerTest, KindAnswers200AndTakesJsonOnly) {
  const NormalizerKind* kind = FindNormalizerKind("nanomdm");
  ASSERT_NE(kind, nullptr);
  const SourceConfig config{.name = "mdm", .path = "/hooks/mdm", .normalizer = "nanomdm"};
  EXPECT_EQ(SuccessStatus(config), 200);
  EXPECT_TRUE(HasEventId(config));
  EXPECT_EQ(DefaultDedup(config).key, DedupKey::kEventIdOrBodyHash);
  SourceConfig accepted = config;
  accepted.success_status = 202;
  EXPECT_EQ(SuccessStatus(accepted), 202);

  std::unique_ptr<Normalizer> normalizer = kind->create(config);
  const std::string body = ReadFixture("checkout");
  const HeaderLookup no_headers;
  absl::StatusOr<Event> event = normalizer->Normalize(
      {.content_type = "application/json; charset=utf-8", .header = no_headers, .header_names = {}, .body = body});
  ASSERT_TRUE(event.ok()) << event.status();
  EXPECT_EQ(event->source(), "/hooks/mdm");
  EXPECT_EQ(normalizer
                ->Normalize({.content_type = "application/x-plist", .header = no_headers, .header_names = {}, .body = body})
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace hookfan::ingress
