#include "ingress/nanomdm_normalizer.h"

#include <plist/plist.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/algorithm/container.h"
#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "core/event_rules.h"
#include "google/protobuf/stubs/common.h"
#include "ingress/json_body.h"
#include "nlohmann/json.hpp"

namespace hookfan::ingress {
namespace {

using ::hookfan::v1::Event;
using ::nlohmann::json;

// Which of the two event objects a topic carries.
enum class Shape { kCheckin, kCommandReport };

struct Topic {
  std::string_view topic;
  std::string_view type;
  Shape shape;
};

// Every topic NanoMDM's event schema lists (service/webhook/event.json);
// MicroMDM sends the first three and mdm.Connect.
constexpr Topic kTopics[] = {
    {"mdm.Authenticate", "nanomdm.device.authenticated", Shape::kCheckin},
    {"mdm.TokenUpdate", "nanomdm.device.token_updated", Shape::kCheckin},
    {"mdm.CheckOut", "nanomdm.device.checked_out", Shape::kCheckin},
    {"mdm.UserAuthenticate", "nanomdm.user.authenticated", Shape::kCheckin},
    {"mdm.SetBootstrapToken", "nanomdm.bootstrap_token.set", Shape::kCheckin},
    {"mdm.GetBootstrapToken", "nanomdm.bootstrap_token.requested", Shape::kCheckin},
    {"mdm.DeclarativeManagement", "nanomdm.declarative_management.requested",
     Shape::kCheckin},
    {"mdm.GetToken", "nanomdm.token.requested", Shape::kCheckin},
    {"mdm.Connect", "nanomdm.command.reported", Shape::kCommandReport},
};

constexpr std::string_view kUnrecognized = "nanomdm.unrecognized";

// Go's zero time, which NanoMDM's tests send as created_at: "not set".
constexpr int64_t kGoZeroTimeSeconds = broker::kMinTimestampSeconds;

// The string members of `params` (url_params); other values are skipped.
void CopyUrlParams(const json* params, google::protobuf::Map<std::string, std::string>* out) {
  if (params == nullptr || !params->is_object()) return;
  for (const auto& [name, value] : params->items()) {
    if (value.is_string()) (*out)[name] = value.get_ref<const std::string&>();
  }
}

// raw_payload decoded from base64; "" when absent or not base64 (the body,
// kept whole in Event.data, still has it).
std::string RawPayload(const json* object) {
  std::string decoded;
  if (!absl::Base64Unescape(JsonString(JsonMember(object, "raw_payload")), &decoded)) {
    return "";
  }
  return decoded;
}

// The largest check-in property list read for the device's identity: an
// Authenticate message is well under 4 KiB.
constexpr size_t kMaxCheckinPlistBytes = 64 * 1024;

// What a check-in's property list says of its device, as Apple's
// Authenticate message carries it; empty strings for what it lacks.
struct CheckinDevice {
  std::string serial_number;  // SerialNumber
  std::string name;           // DeviceName
  std::string os_version;     // OSVersion
};

// `plist` (XML or binary) read by libplist; nothing for a payload that is
// no property list, is not a dictionary or is over kMaxCheckinPlistBytes.
// Only string values in valid UTF-8 are taken (they go into proto strings).
CheckinDevice ReadCheckinDevice(std::string_view plist) {
  CheckinDevice device;
  if (plist.empty() || plist.size() > kMaxCheckinPlistBytes) return device;
  plist_t root = nullptr;
  plist_from_memory(plist.data(), static_cast<uint32_t>(plist.size()), &root);
  if (root == nullptr) return device;
  const std::unique_ptr<void, void (*)(plist_t)> owned(root, plist_free);
  if (plist_get_node_type(root) != PLIST_DICT) return device;
  auto string = [&](const char* key) -> std::string {
    const plist_t node = plist_dict_get_item(root, key);
    if (node == nullptr || plist_get_node_type(node) != PLIST_STRING) return "";
    uint64_t length = 0;
    const char* value = plist_get_string_ptr(node, &length);
    if (value == nullptr || length > kMaxCheckinPlistBytes ||
        !google::protobuf::internal::IsStructurallyValidUTF8(value, static_cast<int>(length))) {
      return "";
    }
    return std::string(value, length);
  };
  device.serial_number = string("SerialNumber");
  device.name = string("DeviceName");
  device.os_version = string("OSVersion");
  return device;
}

void FillCheckin(std::string_view topic, const json* object, Event* event) {
  v1::AppleMdmCheckin* checkin = event->mutable_apple_mdm_checkin();
  checkin->set_topic(std::string(topic));
  checkin->set_udid(JsonString(JsonMember(object, "udid")));
  checkin->set_enrollment_id(JsonString(JsonMember(object, "enrollment_id")));
  CopyUrlParams(JsonMember(object, "url_params"), checkin->mutable_url_params());
  if (const json* tally = JsonMember(object, "token_update_tally");
      tally != nullptr && tally->is_number_integer()) {
    checkin->set_token_update_tally(tally->get<int64_t>());
  }
  checkin->set_raw_payload(RawPayload(object));
}

void FillCommandReport(const json* object, Event* event) {
  v1::AppleMdmCommandReport* report = event->mutable_apple_mdm_command_report();
  report->set_udid(JsonString(JsonMember(object, "udid")));
  report->set_enrollment_id(JsonString(JsonMember(object, "enrollment_id")));
  report->set_command_uuid(JsonString(JsonMember(object, "command_uuid")));
  report->set_status(JsonString(JsonMember(object, "status")));
  CopyUrlParams(JsonMember(object, "url_params"), report->mutable_url_params());
  report->set_raw_payload(RawPayload(object));
}

}  // namespace

absl::StatusOr<Event> NormalizeNanoMdm(std::string_view body) {
  ASSIGN_OR_RETURN(const json root, ParseJsonObjectWith(body, "topic"));
  const json* topic = JsonMember(&root, "topic");

  Event event;
  event.set_source("/webhooks/nanomdm");
  event.set_action(JsonString(topic));
  event.set_source_event_id(JsonString(JsonMember(&root, "event_id")));
  if (absl::StatusOr<google::protobuf::Timestamp> created =
          ParseRfc3339Timestamp("created_at", JsonString(JsonMember(&root, "created_at")));
      created.ok() && created->seconds() != kGoZeroTimeSeconds) {
    *event.mutable_source_time() = *created;
  }
  event.set_platform(v1::PLATFORM_APPLE);
  event.set_data_content_type("application/json");
  event.set_data(body.data(), body.size());

  const auto known = absl::c_find_if(
      kTopics, [&](const Topic& t) { return t.topic == event.action(); });
  const json* object = nullptr;
  if (known == std::end(kTopics)) {
    event.set_type(std::string(kUnrecognized));
    JsonToStruct(root, event.mutable_unrecognized()->mutable_body());
    // An unknown topic may still name its device the usual way.
    object = JsonObjectMember(&root, "checkin_event");
    if (object == nullptr) object = JsonObjectMember(&root, "acknowledge_event");
  } else if (known->shape == Shape::kCheckin) {
    event.set_type(std::string(known->type));
    object = JsonObjectMember(&root, "checkin_event");
    FillCheckin(event.action(), object, &event);
  } else {
    event.set_type(std::string(known->type));
    object = JsonObjectMember(&root, "acknowledge_event");
    FillCommandReport(object, &event);
  }

  const std::string udid = JsonString(JsonMember(object, "udid"));
  const std::string enrollment_id = JsonString(JsonMember(object, "enrollment_id"));
  if (!udid.empty()) {
    event.set_subject(absl::StrCat("devices/", udid));
    v1::DeviceIdentity* device = event.mutable_device();
    device->set_provider(std::string(kNanoMdmNormalizer.name));
    device->set_id(udid);
    device->set_udid(udid);
    device->set_platform(v1::PLATFORM_APPLE);
    if (event.has_apple_mdm_checkin()) {
      CheckinDevice checkin = ReadCheckinDevice(event.apple_mdm_checkin().raw_payload());
      device->set_serial_number(std::move(checkin.serial_number));
      device->set_name(std::move(checkin.name));
      device->set_os_version(std::move(checkin.os_version));
    }
  }
  event.set_key(udid.empty() ? enrollment_id : udid);
  return event;
}

const NormalizerKind kNanoMdmNormalizer = {
    .name = "nanomdm",
    .create = [](const SourceConfig& source) -> std::unique_ptr<Normalizer> {
      return MakeJsonBodyNormalizer(NormalizeNanoMdm, source.path);
    },
    // MicroMDM sends an event_id, NanoMDM none: its bodies are deduplicated
    // on their hash.
    .default_dedup = [](const SourceConfig&) {
      return DedupConfig{DedupKey::kEventIdOrBodyHash, absl::Minutes(10)};
    },
    .has_event_id = [](const SourceConfig&) { return true; },
    .success_status = 200,
};

}  // namespace hookfan::ingress
