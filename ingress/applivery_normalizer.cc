#include "ingress/applivery_normalizer.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/algorithm/container.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "google/protobuf/struct.pb.h"
#include "ingress/json_body.h"
#include "nlohmann/json.hpp"

namespace hookfan::ingress {
namespace {

using ::hookfan::v1::Device;
using ::hookfan::v1::Event;
using ::hookfan::v1::MdmUser;
using ::hookfan::v1::Platform;
using ::nlohmann::json;

// ---------------------------------------------------------------------------
// Parsing.

// ---------------------------------------------------------------------------
// Type-guarded access (JsonMember and the rest, ingress/json_body.h): a
// missing or wrong-typed field reads as empty.

// The first non-empty string among `candidates`, or "".
std::string FirstString(std::initializer_list<const json*> candidates) {
  for (const json* candidate : candidates) {
    if (std::string s = JsonString(candidate); !s.empty()) return s;
  }
  return "";
}

// An int32 sent as a JSON integer or as a decimal string ("5"); else 0.
int32_t Int32(const json* j) {
  int32_t value = 0;
  if (j == nullptr) return value;
  const std::string text = j->is_string()           ? JsonString(j)
                           : j->is_number_integer() ? j->dump()
                                                    : std::string();
  return absl::SimpleAtoi(text, &value) ? value : 0;
}

// ---------------------------------------------------------------------------
// Entities named in the body.

// The "id" query parameter of `url`, or "".
std::string UrlIdParameter(std::string_view url) {
  const size_t query_start = url.find('?');
  if (query_start == url.npos) return "";
  std::string_view query = url.substr(query_start + 1);
  query = query.substr(0, query.find('#'));
  while (true) {
    const size_t end = query.find('&');
    if (const std::string_view param = query.substr(0, end);
        param.starts_with("id=")) {
      return std::string(param.substr(3));
    }
    if (end == query.npos) return "";
    query.remove_prefix(end + 1);
  }
}

// The device object: under "<prefix>Device" if that is an object, else under
// the first key ending in "Device" whose value is an object.
std::optional<Device> ParseDevice(const json& body, std::string_view prefix) {
  std::string field = std::string(prefix) + "Device";
  const json* device = JsonObjectMember(&body, field);
  for (auto it = body.begin(); device == nullptr && it != body.end(); ++it) {
    if (it.key().ends_with("Device") && it->is_object()) {
      field = it.key();
      device = &*it;
    }
  }
  if (device == nullptr) return std::nullopt;
  Device out;
  out.set_url(JsonString(JsonMember(device, "url")));
  out.set_id(UrlIdParameter(out.url()));
  out.set_management_type(JsonString(JsonMember(device, "type")));
  out.set_product_name(JsonString(JsonMember(device, "productName")));
  out.set_field(field);
  return out;
}

// "mdmUser"; its id arrives as a string or as an object {id, email}, whose
// email stands in when the user's own is missing.
std::optional<MdmUser> ParseMdmUser(const json& body) {
  const json* user = JsonObjectMember(&body, "mdmUser");
  if (user == nullptr) return std::nullopt;
  const json* id = JsonMember(user, "id");
  MdmUser out;
  out.set_id(FirstString({id, JsonMember(id, "id")}));
  out.set_email(FirstString({JsonMember(user, "email"), JsonMember(id, "email")}));
  out.set_url(JsonString(JsonMember(user, "url")));
  return out;
}

// What payload builders read.
struct Parsed {
  const json& body;
  std::optional<Device> device;
  std::optional<MdmUser> mdm_user;
};

// ---------------------------------------------------------------------------
// Payload builders, one per event shape.

using FillPayload = void (*)(const Parsed&, Event*);

void FillEnrollmentToken(const Parsed& in, Event* event) {
  auto* payload = event->mutable_enrollment_token_created();
  payload->set_token_type(
      JsonString(JsonMember(JsonMember(&in.body, "enrollmentToken"), "type")));
  const json* send_email = JsonMember(&in.body, "sendEmail");
  payload->set_send_email(send_email != nullptr && send_email->is_boolean() &&
                          send_email->get<bool>());
  if (in.mdm_user) *payload->mutable_mdm_user() = *in.mdm_user;
}

template <typename Payload>
void SetDeviceAndUser(const Parsed& in, Payload* payload) {
  if (in.device) *payload->mutable_device() = *in.device;
  if (in.mdm_user) *payload->mutable_mdm_user() = *in.mdm_user;
}

void FillDeviceEnrolled(const Parsed& in, Event* event) {
  SetDeviceAndUser(in, event->mutable_device_enrolled());
}

void FillDeviceUserAssigned(const Parsed& in, Event* event) {
  auto* payload = event->mutable_device_user_assigned();
  SetDeviceAndUser(in, payload);
  payload->set_trigger(JsonString(JsonMember(&in.body, "trigger")));
}

void FillApnsExpiring(const Parsed& in, Event* event) {
  auto* payload = event->mutable_apns_certificate_expiring();
  payload->set_days_left(Int32(JsonMember(&in.body, "numDays")));
  payload->set_apple_id(JsonString(JsonMember(&in.body, "appleId")));
}

// "inventoryItem"; "members" is an object, or an array whose first object
// is taken.
void FillInventoryItem(const Parsed& in, v1::InventoryItemChanged* payload) {
  const json* item = JsonObjectMember(&in.body, "inventoryItem");
  payload->set_id(JsonString(JsonMember(item, "id")));
  payload->set_item_type(JsonString(JsonMember(item, "type")));
  const json* member = JsonMember(item, "members");
  if (member != nullptr && member->is_array()) {
    const auto it = absl::c_find_if(
        *member, [](const json& element) { return element.is_object(); });
    member = it == member->end() ? nullptr : &*it;
  }
  if (member != nullptr && member->is_object()) {
    v1::InventoryItemMember* out = payload->mutable_member();
    out->set_type(JsonString(JsonMember(member, "type")));
    out->set_id(JsonString(JsonMember(member, "memberId")));
    out->set_email(JsonString(JsonMember(member, "email")));
  }
  if (const json* metadata = JsonObjectMember(item, "metadata")) {
    JsonToStruct(*metadata, payload->mutable_metadata());
  }
}

void FillAppDistribution(const Parsed& in, Event* event) {
  const json* body = &in.body;
  auto* payload = event->mutable_app_distribution();
  payload->set_application_id(FirstString(
      {JsonMember(body, "application"), JsonMember(JsonMember(body, "application"), "id"),
       JsonMember(JsonMember(body, "app"), "id"), JsonMember(body, "applicationId")}));
  payload->set_build_id(
      FirstString({JsonMember(body, "build"), JsonMember(JsonMember(body, "build"), "id"),
                   JsonMember(body, "buildId")}));
  JsonToStruct(in.body, payload->mutable_body());
}

void FillUnrecognized(const Parsed& in, Event* event) {
  JsonToStruct(in.body, event->mutable_unrecognized()->mutable_body());
}

// ---------------------------------------------------------------------------
// Routing: action (and sub-action) to type, payload and platform.

struct Mapping {
  std::string_view match;  // Action, action after "{os}_", or sub-action.
  std::string_view type;
  FillPayload fill;
  Platform platform = v1::PLATFORM_UNSPECIFIED;
};

constexpr Mapping kExactActions[] = {
    {"apple_push_certification_renovation",
     "applivery.apns_certificate.expiring", FillApnsExpiring,
     v1::PLATFORM_APPLE},
    {"build_created", "applivery.build.created", FillAppDistribution},
    {"build_processed", "applivery.build.processed", FillAppDistribution},
    {"bug_created", "applivery.bug.created", FillAppDistribution},
    {"feedback_created", "applivery.feedback.created", FillAppDistribution},
    {"certificate_will_expire", "applivery.certificate.expiring",
     FillAppDistribution},
};

// Actions spelled "{os}_<match>".
constexpr Mapping kPlatformActions[] = {
    {"enrollment_token_created", "applivery.enrollment_token.created",
     FillEnrollmentToken},
    {"enrollment-token_created", "applivery.enrollment_token.created",
     FillEnrollmentToken},
    {"device_enrolled", "applivery.device.enrolled", FillDeviceEnrolled},
    {"device_added_mdm_user", "applivery.device.user_assigned",
     FillDeviceUserAssigned},
};

// Actions containing "InventoryItem", by sub-action.
constexpr Mapping kInventorySubActions[] = {
    {"created", "applivery.inventory_item.created",
     [](const Parsed& in, Event* event) {
       FillInventoryItem(in, event->mutable_inventory_item_created());
     }},
    {"updated", "applivery.inventory_item.updated",
     [](const Parsed& in, Event* event) {
       FillInventoryItem(in, event->mutable_inventory_item_updated());
     }},
    {"deleted", "applivery.inventory_item.deleted",
     [](const Parsed& in, Event* event) {
       FillInventoryItem(in, event->mutable_inventory_item_deleted());
     }},
};

constexpr std::pair<std::string_view, Platform> kPlatformPrefixes[] = {
    {"emm", v1::PLATFORM_ANDROID},
    {"adm", v1::PLATFORM_APPLE},
    {"win", v1::PLATFORM_WINDOWS},
    {"aos", v1::PLATFORM_AOSP},
};

struct Route {
  std::string_view type = "applivery.unrecognized";
  FillPayload fill = FillUnrecognized;
  Platform platform = v1::PLATFORM_UNSPECIFIED;
  std::string_view platform_prefix = "";
};

const Mapping* Lookup(const auto& table, std::string_view match) {
  const auto it = absl::c_find_if(
      table, [match](const Mapping& m) { return m.match == match; });
  return it == std::end(table) ? nullptr : &*it;
}

Route RouteAction(std::string_view action, std::string_view sub_action) {
  if (const Mapping* m = Lookup(kExactActions, action)) {
    return {.type = m->type, .fill = m->fill, .platform = m->platform};
  }
  if (action.find("InventoryItem") != action.npos) {
    const Mapping* m = Lookup(kInventorySubActions, sub_action);
    return m == nullptr ? Route{} : Route{.type = m->type, .fill = m->fill};
  }
  // "{os}_...": the prefix is non-empty lowercase alphanumerics.
  const size_t underscore = action.find('_');
  if (underscore == action.npos) return {};
  const std::string_view prefix = action.substr(0, underscore);
  if (prefix.empty() || !absl::c_all_of(prefix, [](char c) {
        return absl::ascii_islower(c) || absl::ascii_isdigit(c);
      })) {
    return {};
  }
  const auto known = absl::c_find_if(
      kPlatformPrefixes, [prefix](const auto& p) { return p.first == prefix; });
  const Platform platform =
      known == std::end(kPlatformPrefixes) ? v1::PLATFORM_OTHER : known->second;
  if (const Mapping* m =
          Lookup(kPlatformActions, action.substr(underscore + 1))) {
    return {.type = m->type,
            .fill = m->fill,
            .platform = platform,
            .platform_prefix = prefix};
  }
  // Unknown action: keep the platform only when the prefix is a known one;
  // an unknown word before "_" need not be a platform at all.
  if (platform == v1::PLATFORM_OTHER) return {};
  return {.platform = platform, .platform_prefix = prefix};
}

}  // namespace

absl::StatusOr<Event> NormalizeApplivery(std::string_view body) {
  ASSIGN_OR_RETURN(const json root, ParseJsonObjectWith(body, "action"));
  const json* action = JsonMember(&root, "action");

  Event event;
  event.set_source("/webhooks/applivery");
  event.set_action(JsonString(action));
  event.set_sub_action(JsonString(JsonMember(&root, "subAction")));
  event.set_data_content_type("application/json");
  event.set_data(body.data(), body.size());
  if (const json* org = JsonObjectMember(&root, "organization")) {
    v1::Organization* out = event.mutable_organization();
    out->set_id(JsonString(JsonMember(org, "id")));
    out->set_name(JsonString(JsonMember(org, "name")));
    out->set_url(JsonString(JsonMember(org, "url")));
  }

  const Route route = RouteAction(event.action(), event.sub_action());
  event.set_type(std::string(route.type));
  event.set_platform(route.platform);
  event.set_platform_prefix(std::string(route.platform_prefix));
  const Parsed parsed{root, ParseDevice(root, route.platform_prefix),
                      ParseMdmUser(root)};
  route.fill(parsed, &event);

  const std::string device_id = parsed.device ? parsed.device->id() : "";
  const std::string user_id = parsed.mdm_user ? parsed.mdm_user->id() : "";
  const std::string item_id = JsonString(JsonMember(JsonMember(&root, "inventoryItem"), "id"));
  if (!device_id.empty()) {
    event.set_subject(absl::StrCat("devices/", device_id));
  } else if (!user_id.empty()) {
    event.set_subject(absl::StrCat("mdm-users/", user_id));
  } else if (!item_id.empty()) {
    event.set_subject(absl::StrCat("inventory-items/", item_id));
  }
  event.set_key(device_id.empty() ? event.organization().id() : device_id);
  if (parsed.device) {
    v1::DeviceIdentity* device = event.mutable_device();
    device->set_provider(std::string(kAppliveryNormalizer.name));
    device->set_id(device_id);
    device->set_platform(route.platform);
    if (parsed.mdm_user) device->set_user(parsed.mdm_user->email());
  }
  return event;
}

const NormalizerKind kAppliveryNormalizer = {
    .name = "applivery",
    .create = [](const SourceConfig& source) -> std::unique_ptr<Normalizer> {
      return MakeJsonBodyNormalizer(NormalizeApplivery, source.path);
    },
    .default_dedup = [](const SourceConfig&) {
      return DedupConfig{DedupKey::kBodyHash, absl::Minutes(10)};
    },
};

}  // namespace hookfan::ingress
