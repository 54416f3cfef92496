#include "ingress/jamf_pro_normalizer.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/algorithm/container.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "core/event_rules.h"
#include "ingress/json_body.h"
#include "nlohmann/json.hpp"

namespace hookfan::ingress {
namespace {

using ::hookfan::v1::Event;
using ::nlohmann::json;

// Where an event keeps the device it is about.
enum class DeviceAt {
  kNone,      // no device (server, API, push, patch title, smart group events)
  kComputer,  // event.computer if it is an object (current Jamf), else event
  kMobile,    // event
  kDep,       // event: a device assigned for Automated Device Enrollment (serial only)
};

struct JamfEvent {
  std::string_view name;  // webhook.webhookEvent
  std::string_view type;
  DeviceAt device;
  std::string_view subject;  // "computers", … : the collection the jss id names; "" for none
};

// Every webhookEvent Jamf Pro lists (tests/fixtures/jamf_pro/README.md) but
// SCEPChallenge, which is refused.
constexpr JamfEvent kEvents[] = {
    {"ComputerAdded", "jamf_pro.computer.added", DeviceAt::kComputer, "computers"},
    {"ComputerCheckIn", "jamf_pro.computer.checked_in", DeviceAt::kComputer, "computers"},
    {"ComputerInventoryCompleted", "jamf_pro.computer.inventory_completed", DeviceAt::kComputer,
     "computers"},
    {"ComputerPatchPolicyCompleted", "jamf_pro.computer.patch_policy_completed",
     DeviceAt::kComputer, "computers"},
    {"ComputerPolicyFinished", "jamf_pro.computer.policy_finished", DeviceAt::kComputer,
     "computers"},
    {"ComputerPushCapabilityChanged", "jamf_pro.computer.push_capability_changed",
     DeviceAt::kComputer, "computers"},
    {"DeviceAddedToDEP", "jamf_pro.dep_device.added", DeviceAt::kDep, ""},
    {"DeviceRateLimited", "jamf_pro.device.rate_limited", DeviceAt::kMobile, ""},
    {"JSSShutdown", "jamf_pro.server.shut_down", DeviceAt::kNone, ""},
    {"JSSStartup", "jamf_pro.server.started", DeviceAt::kNone, ""},
    {"MobileDeviceCheckIn", "jamf_pro.mobile_device.checked_in", DeviceAt::kMobile,
     "mobile-devices"},
    {"MobileDeviceCommandCompleted", "jamf_pro.mobile_device.command_completed",
     DeviceAt::kMobile, "mobile-devices"},
    {"MobileDeviceEnrolled", "jamf_pro.mobile_device.enrolled", DeviceAt::kMobile,
     "mobile-devices"},
    {"MobileDeviceInventoryCompleted", "jamf_pro.mobile_device.inventory_completed",
     DeviceAt::kMobile, "mobile-devices"},
    {"MobileDevicePushSent", "jamf_pro.mobile_device.push_sent", DeviceAt::kMobile,
     "mobile-devices"},
    {"MobileDeviceUnEnrolled", "jamf_pro.mobile_device.unenrolled", DeviceAt::kMobile,
     "mobile-devices"},
    {"PatchSoftwareTitleUpdated", "jamf_pro.patch_software_title.updated", DeviceAt::kNone,
     "patch-software-titles"},
    {"PushSent", "jamf_pro.push.sent", DeviceAt::kNone, ""},
    {"RestAPIOperation", "jamf_pro.api_operation.performed", DeviceAt::kNone, ""},
    {"SmartGroupComputerMembershipChange", "jamf_pro.smart_group.computer_membership_changed",
     DeviceAt::kNone, "smart-groups"},
    {"SmartGroupMobileDeviceMembershipChange",
     "jamf_pro.smart_group.mobile_device_membership_changed", DeviceAt::kNone, "smart-groups"},
    {"SmartGroupUserMembershipChange", "jamf_pro.smart_group.user_membership_changed",
     DeviceAt::kNone, "smart-groups"},
};

constexpr JamfEvent kUnrecognized = {"", "jamf_pro.unrecognized", DeviceAt::kNone, ""};

// The booleans at `key`, or nullopt when absent or another type.
std::optional<bool> Bool(const json* object, std::string_view key) {
  const json* j = JsonMember(object, key);
  if (j == nullptr || !j->is_boolean()) return std::nullopt;
  return j->get<bool>();
}

void AddIds(const json* ids, google::protobuf::RepeatedField<int64_t>* out) {
  if (ids == nullptr || !ids->is_array()) return;
  for (const json& id : *ids) {
    if (const int64_t value = JsonInt64(&id); value != 0) out->Add(value);
  }
}

// eventTimestamp: epoch milliseconds (Jamf), or seconds from senders that
// imitate Jamf (values below 10^11, i.e. before 1973 read as
// milliseconds); nullopt when absent or outside a Timestamp's range.
std::optional<google::protobuf::Timestamp> EventTime(const json* webhook) {
  const json* stamp = JsonMember(webhook, "eventTimestamp");
  if (stamp == nullptr || !stamp->is_number_integer()) return std::nullopt;
  const int64_t value = stamp->get<int64_t>();
  if (value <= 0) return std::nullopt;
  return TimestampFromUnixMillis(value < 100'000'000'000 ? value * 1000 : value);
}

// The device object of `event` for `where`; null when it has none.
const json* DeviceObject(const json* event, DeviceAt where) {
  switch (where) {
    case DeviceAt::kNone:
      return nullptr;
    case DeviceAt::kComputer:
      if (const json* computer = JsonObjectMember(event, "computer")) return computer;
      return event;
    case DeviceAt::kMobile:
    case DeviceAt::kDep:
      return event;
  }
  return nullptr;
}

// The device `object` names, or nullopt when it names none (no jssID,
// serial number or UDID).
std::optional<v1::DeviceIdentity> Device(const json* object) {
  if (object == nullptr || !object->is_object()) return std::nullopt;
  v1::DeviceIdentity device;
  device.set_provider(std::string(kJamfProNormalizer.name));
  if (const int64_t jss_id = JsonInt64(JsonMember(object, "jssID")); jss_id > 0) {
    device.set_id(absl::StrCat(jss_id));
  }
  device.set_serial_number(JsonString(JsonMember(object, "serialNumber")));
  device.set_udid(JsonString(JsonMember(object, "udid")));
  if (device.id().empty() && device.serial_number().empty() && device.udid().empty()) {
    return std::nullopt;
  }
  device.set_name(JsonString(JsonMember(object, "deviceName")));
  device.set_platform(v1::PLATFORM_APPLE);
  device.set_os_version(JsonString(JsonMember(object, "osVersion")));
  std::string user = JsonString(JsonMember(object, "username"));
  if (user.empty()) user = JsonString(JsonMember(object, "emailAddress"));
  device.set_user(std::move(user));
  return device;
}

absl::Status Refused(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

}  // namespace

absl::StatusOr<Event> NormalizeJamfPro(std::string_view body) {
  ASSIGN_OR_RETURN(const json root, ParseJsonBody(body));
  if (!root.is_object()) {
    return Refused(absl::StrCat("body must be a JSON object, got ", root.type_name()));
  }
  const json* webhook = JsonMember(&root, "webhook");
  if (webhook == nullptr) return Refused("missing required object \"webhook\"");
  if (!webhook->is_object()) {
    return Refused(absl::StrCat("field \"webhook\" must be an object, got ", webhook->type_name()));
  }
  const json* name = JsonMember(webhook, "webhookEvent");
  if (name == nullptr) return Refused("missing required field \"webhook.webhookEvent\"");
  if (!name->is_string()) {
    return Refused(absl::StrCat("field \"webhook.webhookEvent\" must be a string, got ",
                                name->type_name()));
  }
  const std::string& webhook_event = name->get_ref<const std::string&>();
  if (webhook_event.empty()) return Refused("field \"webhook.webhookEvent\" must not be empty");
  if (webhook_event == "SCEPChallenge") {
    return Refused(
        "webhookEvent SCEPChallenge asks for a SCEP challenge in the answer, which hookfan does "
        "not give: point this webhook at your challenge service");
  }

  const auto known = absl::c_find_if(
      kEvents, [&](const JamfEvent& e) { return e.name == webhook_event; });
  const JamfEvent& kind = known == std::end(kEvents) ? kUnrecognized : *known;
  const json* event_object = JsonObjectMember(&root, "event");

  Event event;
  event.set_source("/webhooks/jamf_pro");
  event.set_type(std::string(kind.type));
  event.set_action(webhook_event);
  event.set_data_content_type("application/json");
  event.set_data(body.data(), body.size());
  if (std::optional<google::protobuf::Timestamp> time = EventTime(webhook)) {
    *event.mutable_source_time() = *time;
  }

  v1::JamfProWebhook* payload = event.mutable_jamf_pro();
  payload->set_webhook_id(JsonInt64(JsonMember(webhook, "id")));
  payload->set_webhook_name(JsonString(JsonMember(webhook, "name")));
  payload->set_webhook_event(webhook_event);
  if (event_object != nullptr) JsonToStruct(*event_object, payload->mutable_event());

  const json* device_object = DeviceObject(event_object, kind.device);
  if (kind.device == DeviceAt::kComputer) payload->set_computer(true);
  if (kind.device == DeviceAt::kMobile && !kind.subject.empty()) payload->set_computer(false);
  if (device_object != nullptr) payload->set_jss_id(JsonInt64(JsonMember(device_object, "jssID")));
  // ComputerCheckIn and ComputerPolicyFinished keep these beside "computer".
  payload->set_trigger(JsonString(JsonMember(event_object, "trigger")));
  payload->set_policy_id(JsonInt64(JsonMember(event_object, "policyId")));
  if (payload->policy_id() == 0) payload->set_policy_id(JsonInt64(JsonMember(event_object, "patchPolicyId")));
  if (std::optional<bool> ok = Bool(event_object, "successful")) payload->set_successful(*ok);
  if (std::optional<bool> ok = Bool(event_object, "operationSuccessful")) {
    payload->set_successful(*ok);
  }
  if (kind.subject == "smart-groups") {
    payload->set_jss_id(JsonInt64(JsonMember(event_object, "jssid")));
    payload->set_group_name(JsonString(JsonMember(event_object, "name")));
    AddIds(JsonMember(event_object, "groupAddedDevicesIds"), payload->mutable_added_ids());
    AddIds(JsonMember(event_object, "groupAddedUserIds"), payload->mutable_added_ids());
    AddIds(JsonMember(event_object, "groupRemovedDevicesIds"), payload->mutable_removed_ids());
    AddIds(JsonMember(event_object, "groupRemovedUserIds"), payload->mutable_removed_ids());
  } else if (kind.subject == "patch-software-titles") {
    payload->set_jss_id(JsonInt64(JsonMember(event_object, "jssID")));
  } else if (webhook_event == "RestAPIOperation") {
    payload->set_jss_id(JsonInt64(JsonMember(event_object, "objectID")));
  }

  if (std::optional<v1::DeviceIdentity> device = Device(device_object)) {
    *event.mutable_device() = *std::move(device);
    event.set_platform(v1::PLATFORM_APPLE);
  }
  if (kind.device == DeviceAt::kDep && !event.device().serial_number().empty()) {
    event.set_subject(absl::StrCat("dep-devices/", event.device().serial_number()));
  } else if (!kind.subject.empty() && payload->jss_id() > 0) {
    event.set_subject(absl::StrCat(absl::string_view(kind.subject.data(), kind.subject.size()), "/",
                                   payload->jss_id()));
  }
  event.set_key(DeviceKey(event));
  return event;
}

const NormalizerKind kJamfProNormalizer = {
    .name = "jamf_pro",
    .create = [](const SourceConfig& source) -> std::unique_ptr<Normalizer> {
      return MakeJsonBodyNormalizer(
          NormalizeJamfPro, source.path,
          " (Jamf Pro sends XML unless the webhook's Content Type is JSON: choose JSON in "
          "Settings > Global > Webhooks)");
    },
    .default_dedup = [](const SourceConfig&) {
      return DedupConfig{DedupKey::kBodyHash, absl::Hours(24)};
    },
    // Jamf does not say which statuses it takes as success; the receivers
    // documented with it answer 200.
    .success_status = 200,
};

}  // namespace hookfan::ingress
