// Fuzzes NormalizeApplivery (ingress/applivery_normalizer.h): the input is
// one webhook body. Checks the contract, not only that nothing crashes:
// - an error is kInvalidArgument with a printable-ASCII message, and it is
//   the documented one for text that is no JSON and for JSON nested deeper
//   than kAppliveryMaxJsonDepth (counted here on the text), whichever comes
//   first in the text (fuzz_check.h, CheckJsonVerdict);
// - an event has a valid type (core/event_rules.h) under "applivery.",
//   the payload its type names, the fixed source and content type, the body
//   byte for byte as data, a non-empty action, a subject of one of the
//   documented shapes, the key those imply, and no id, sequence or time;
// - the event survives serialization inside three enclosing messages, as
//   kAppliveryMaxJsonDepth promises (and so holds valid UTF-8 only).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "fuzz/fuzz_check.h"
#include "hookfan/v1/event.pb.h"
#include "ingress/applivery_normalizer.h"
#include "core/event_rules.h"
#include "nlohmann/json.hpp"

namespace {

using ::hookfan::fuzz::Check;
using ::hookfan::fuzz::CheckSurvivesNesting;
using ::hookfan::v1::Event;

// The type each payload case is documented with (hookfan/v1/event.proto);
// "" for the App Distribution payload, which several types share.
std::string_view TypeOf(Event::PayloadCase payload) {
  switch (payload) {
    case Event::kEnrollmentTokenCreated:
      return "applivery.enrollment_token.created";
    case Event::kDeviceEnrolled:
      return "applivery.device.enrolled";
    case Event::kDeviceUserAssigned:
      return "applivery.device.user_assigned";
    case Event::kApnsCertificateExpiring:
      return "applivery.apns_certificate.expiring";
    case Event::kInventoryItemCreated:
      return "applivery.inventory_item.created";
    case Event::kInventoryItemUpdated:
      return "applivery.inventory_item.updated";
    case Event::kInventoryItemDeleted:
      return "applivery.inventory_item.deleted";
    case Event::kUnrecognized:
      return "applivery.unrecognized";
    case Event::kAppDistribution:
      return "";
    case Event::kAppleMdmCheckin:  // other providers' payloads
    case Event::kAppleMdmCommandReport:
    case Event::kJamfPro:
    case Event::PAYLOAD_NOT_SET:
      break;
  }
  return "(no payload)";
}

void CheckEvent(std::string_view body, const Event& event) {
  const std::string shown = event.ShortDebugString();
  Check(hookfan::broker::IsValidEventType(event.type()), "invalid type",
        shown);
  Check(event.type().starts_with("applivery."), "type not applivery.*", shown);
  const std::string_view payload_type = TypeOf(event.payload_case());
  Check(payload_type == event.type() ||
            (payload_type.empty() && event.type() != "applivery.unrecognized"),
        "payload does not match the type", shown);
  Check(event.source() == "/webhooks/applivery", "source", shown);
  Check(event.data_content_type() == "application/json", "data_content_type",
        shown);
  Check(event.data() == body, "data is not the body byte for byte", shown);
  Check(!event.action().empty(), "empty action", shown);
  Check(hookfan::v1::Platform_IsValid(event.platform()), "platform", shown);
  Check(event.id().empty() && event.sequence() == 0 && !event.has_time(),
        "id, sequence or time set", shown);

  const std::string& subject = event.subject();
  constexpr std::string_view kDevices = "devices/";
  if (subject.starts_with(kDevices)) {
    Check(subject.size() > kDevices.size(), "empty device id", shown);
    Check(event.key() == subject.substr(kDevices.size()),
          "key is not the device id", shown);
  } else {
    Check(subject.empty() || subject.starts_with("mdm-users/") ||
              subject.starts_with("inventory-items/"),
          "subject shape", shown);
    Check(event.key() == event.organization().id(),
          "key is not the organization id", shown);
  }

  CheckSurvivesNesting(event);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return hookfan::fuzz::FuzzJsonNormalizer(data, size, hookfan::ingress::NormalizeApplivery,
                                           hookfan::ingress::kAppliveryMaxJsonDepth, CheckEvent);
}
