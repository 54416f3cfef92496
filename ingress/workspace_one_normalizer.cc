#include "ingress/workspace_one_normalizer.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/algorithm/container.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/status_macros.h"
#include "core/event_rules.h"
#include "ingress/json_body.h"
#include "nlohmann/json.hpp"

namespace hookfan::ingress {
namespace {

using ::hookfan::v1::Event;
using ::nlohmann::json;

struct EventKind {
  std::string_view name;  // EventType without spaces, lowercase
  std::string_view type;
};

// The EventTypes tests/fixtures/workspace_one/README.md lists, by the
// spelling both old ("MDMEnrollmentComplete") and new ("MDM Enrollment
// Complete") servers reduce to.
constexpr EventKind kKinds[] = {
    {"mdmenrollmentcomplete", "workspace_one.device.enrolled"},
    {"enrollmentcomplete", "workspace_one.device.enrolled"},
    {"breakmdmconfirmed", "workspace_one.device.unenrolled"},
    {"deviceenterprisewiperequested", "workspace_one.device.enterprise_wipe_requested"},
    {"compromisedstatuschanged", "workspace_one.device.compromised_status_changed"},
    {"compliancestatuschanged", "workspace_one.device.compliance_status_changed"},
    {"deviceoperatingsystemchanged", "workspace_one.device.os_changed"},
    {"deviceorganizationgroupchanged", "workspace_one.device.organization_group_changed"},
    {"devicemcc", "workspace_one.device.mcc_changed"},
    {"assetnumber", "workspace_one.device.asset_number_changed"},
    {"devicefriendlyname", "workspace_one.device.name_changed"},
    {"useremailaddress", "workspace_one.device.user_email_changed"},
    {"ownership", "workspace_one.device.ownership_changed"},
    {"phonenumber", "workspace_one.device.phone_number_changed"},
};

constexpr std::string_view kUnrecognized = "workspace_one.unrecognized";

// `event_type` without spaces, in lowercase: the form kKinds holds.
std::string KindName(std::string_view event_type) {
  std::string name;
  name.reserve(event_type.size());
  for (const char c : event_type) {
    if (c != ' ') name.push_back(absl::ascii_tolower(static_cast<unsigned char>(c)));
  }
  return name;
}

v1::Platform PlatformOf(std::string_view platform) {
  const absl::string_view p(platform.data(), platform.size());
  if (p.empty()) return v1::PLATFORM_UNSPECIFIED;
  if (absl::StartsWithIgnoreCase(p, "apple")) return v1::PLATFORM_APPLE;
  if (absl::StartsWithIgnoreCase(p, "android")) return v1::PLATFORM_ANDROID;
  if (absl::StartsWithIgnoreCase(p, "win")) return v1::PLATFORM_WINDOWS;
  return v1::PLATFORM_OTHER;
}

bool IsHex(std::string_view text) {
  return absl::c_all_of(text, [](char c) { return absl::ascii_isxdigit(static_cast<unsigned char>(c)); });
}

// The UDID as Apple spells it (see NormalizeWorkspaceOne); "" for the junk
// "System.Byte[]"; any other value as sent.
std::string AppleUdid(std::string udid, v1::Platform platform) {
  if (udid == "System.Byte[]") return "";
  if (platform != v1::PLATFORM_APPLE) return udid;
  std::string digits = absl::StrReplaceAll(udid, {{"-", ""}});
  if (!IsHex(digits)) return udid;
  if (digits.size() == 32) {
    digits = absl::StrCat(digits.substr(0, 8), "-", digits.substr(8, 4), "-", digits.substr(12, 4),
                          "-", digits.substr(16, 4), "-", digits.substr(20));
  } else if (digits.size() == 24) {
    digits = absl::StrCat(digits.substr(0, 8), "-", digits.substr(8));
  } else {
    return udid;
  }
  absl::AsciiStrToUpper(&digits);
  return digits;
}

// EventTime and CompromisedTimeStamp: ISO 8601 in UTC with up to seven
// fraction digits, or .NET's "/Date(<epoch ms>)/" from old servers;
// nullopt when absent or neither.
std::optional<google::protobuf::Timestamp> Time(const json* j) {
  const std::string text = JsonString(j);
  if (text.empty()) return std::nullopt;
  if (absl::StartsWith(text, "/Date(") && absl::EndsWith(text, ")/")) {
    int64_t ms = 0;
    if (!absl::SimpleAtoi(absl::string_view(text).substr(6, text.size() - 8), &ms)) {
      return std::nullopt;
    }
    return TimestampFromUnixMillis(ms);
  }
  absl::StatusOr<google::protobuf::Timestamp> parsed = ParseRfc3339Timestamp("EventTime", text);
  if (!parsed.ok()) return std::nullopt;
  return *parsed;
}

}  // namespace

absl::StatusOr<Event> NormalizeWorkspaceOne(std::string_view body) {
  ASSIGN_OR_RETURN(const json root, ParseJsonObjectWith(body, "EventType"));
  auto string = [&](std::string_view key) { return JsonString(JsonMember(&root, key)); };
  const std::string event_type = string("EventType");
  const std::string name = KindName(event_type);
  const auto known = absl::c_find_if(kKinds, [&](const EventKind& k) { return k.name == name; });

  Event event;
  event.set_source("/webhooks/workspace_one");
  event.set_type(std::string(known == std::end(kKinds) ? kUnrecognized : known->type));
  event.set_action(event_type);
  event.set_data_content_type("application/json");
  event.set_data(body.data(), body.size());
  if (std::optional<google::protobuf::Timestamp> time = Time(JsonMember(&root, "EventTime"))) {
    *event.mutable_source_time() = *time;
  }

  v1::WorkspaceOneNotification* payload = event.mutable_workspace_one();
  payload->set_event_code(JsonInt64(JsonMember(&root, "EventId")));
  payload->set_event_type(event_type);
  payload->set_device_id(JsonInt64(JsonMember(&root, "DeviceId")));
  payload->set_enrollment_status(string("EnrollmentStatus"));
  payload->set_compliance_status(string("ComplianceStatus"));
  payload->set_compromised_status(string("CompromisedStatus"));
  if (std::optional<google::protobuf::Timestamp> time =
          Time(JsonMember(&root, "CompromisedTimeStamp"))) {
    *payload->mutable_compromised_time() = *time;
  }
  payload->set_platform(string("Platform"));
  payload->set_ownership(string("Ownership"));
  payload->set_organization_group(string("OrganizationGroupName"));
  payload->set_enrollment_email(string("EnrollmentEmailAddress"));
  payload->set_enrollment_user_name(string("EnrollmentUserName"));
  payload->set_enrollment_user_id(JsonInt64(JsonMember(&root, "EnrollmentUserId")));
  payload->set_enrollment_user_uuid(string("EnrollmentUserUUID"));
  payload->set_device_uuid(string("DeviceUUID"));
  payload->set_asset_number(string("AssetNumber"));
  payload->set_phone_number(string("PhoneNumber"));
  payload->set_imei(string("DeviceIMEI"));
  payload->set_mac_address(string("MACAddress"));
  payload->set_sim_mcc(string("SIMMCC"));
  payload->set_current_mcc(string("CurrentMCC"));

  const v1::Platform platform = PlatformOf(payload->platform());
  event.set_platform(platform);
  v1::DeviceIdentity device;
  device.set_provider(std::string(kWorkspaceOneNormalizer.name));
  if (payload->device_id() > 0) device.set_id(absl::StrCat(payload->device_id()));
  device.set_serial_number(string("SerialNumber"));
  device.set_udid(AppleUdid(string("Udid"), platform));
  if (!device.id().empty() || !device.serial_number().empty() || !device.udid().empty()) {
    device.set_name(string("DeviceFriendlyName"));
    device.set_platform(platform);
    device.set_os_version(string("OperatingSystem"));
    device.set_user(payload->enrollment_user_name().empty() ? payload->enrollment_email()
                                                            : payload->enrollment_user_name());
    *event.mutable_device() = std::move(device);
  }
  if (payload->device_id() > 0) event.set_subject(absl::StrCat("devices/", payload->device_id()));
  event.set_key(DeviceKey(event));
  return event;
}

const NormalizerKind kWorkspaceOneNormalizer = {
    .name = "workspace_one",
    .create = [](const SourceConfig& source) -> std::unique_ptr<Normalizer> {
      return MakeJsonBodyNormalizer(
          NormalizeWorkspaceOne, source.path,
          " (Workspace ONE sends XML when the event notification's Format is XML: choose JSON "
          "in Groups & Settings > All Settings > System > Advanced > API > Event "
          "Notifications)");
    },
    .default_dedup = [](const SourceConfig&) {
      return DedupConfig{DedupKey::kBodyHash, absl::Hours(24)};
    },
    // Workspace ONE's Test Connection expects 200; so do the receivers
    // documented with it for notifications.
    .success_status = 200,
    .answers_get = true,
};

}  // namespace hookfan::ingress
