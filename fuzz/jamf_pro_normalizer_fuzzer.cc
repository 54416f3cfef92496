// Fuzzes NormalizeJamfPro (ingress/jamf_pro_normalizer.h): the input is one
// webhook body. Checks the contract, not only that nothing crashes:
// - an error is kInvalidArgument with a printable-ASCII message, and it is
//   the documented one for text that is no JSON and for JSON nested deeper
//   than kMaxJsonDepth, whichever comes first in the text (fuzz_check.h,
//   CheckJsonVerdict);
// - an event has a valid type (core/event_rules.h) under "jamf_pro.", the
//   jamf_pro payload naming the same webhookEvent as the action, the fixed
//   source and content type, the body byte for byte as data, a device
//   (when set) of provider jamf_pro with an identifier and the Apple
//   platform, a key that is its UDID, else its serial number, else the
//   subject, a valid source_time if any, and no id, sequence or time;
// - the event survives serialization inside three enclosing messages.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/event_rules.h"
#include "fuzz/fuzz_check.h"
#include "hookfan/v1/event.pb.h"
#include "ingress/jamf_pro_normalizer.h"
#include "ingress/json_body.h"

namespace {

using ::hookfan::fuzz::Check;
using ::hookfan::fuzz::CheckDeviceKey;
using ::hookfan::fuzz::CheckSurvivesNesting;
using ::hookfan::v1::Event;

void CheckEvent(std::string_view body, const Event& event) {
  const std::string shown = event.ShortDebugString();
  Check(hookfan::broker::IsValidEventType(event.type()), "invalid type", shown);
  Check(event.type().starts_with("jamf_pro."), "type not jamf_pro.*", shown);
  Check(event.payload_case() == Event::kJamfPro, "payload is not jamf_pro", shown);
  Check(!event.action().empty() && event.jamf_pro().webhook_event() == event.action(),
        "action is not the webhookEvent", shown);
  Check(event.action() != "SCEPChallenge", "a SCEP challenge was taken", shown);
  Check(event.source() == "/webhooks/jamf_pro", "source", shown);
  Check(event.data_content_type() == "application/json", "data_content_type", shown);
  Check(event.data() == body, "data is not the body byte for byte", shown);
  Check(event.id().empty() && event.sequence() == 0 && !event.has_time(),
        "id, sequence or time set", shown);
  if (event.has_source_time()) {
    Check(hookfan::broker::IsValidTimestamp(event.source_time()), "source_time range", shown);
  }
  if (event.has_device()) {
    const hookfan::v1::DeviceIdentity& d = event.device();
    Check(d.provider() == "jamf_pro" && d.platform() == hookfan::v1::PLATFORM_APPLE,
          "device provider or platform", shown);
    Check(!d.id().empty() || !d.serial_number().empty() || !d.udid().empty(),
          "device without an identifier", shown);
    Check(event.platform() == hookfan::v1::PLATFORM_APPLE, "event platform", shown);
  }
  CheckDeviceKey(event);

  CheckSurvivesNesting(event);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return hookfan::fuzz::FuzzJsonNormalizer(data, size, hookfan::ingress::NormalizeJamfPro,
                                           hookfan::ingress::kMaxJsonDepth, CheckEvent);
}
