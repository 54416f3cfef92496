// Fuzzes NormalizeWorkspaceOne (ingress/workspace_one_normalizer.h): the
// input is one event notification body. Checks the contract, not only that
// nothing crashes:
// - an error is kInvalidArgument with a printable-ASCII message, and it is
//   the documented one for text that is no JSON and for JSON nested deeper
//   than kMaxJsonDepth, whichever comes first in the text (fuzz_check.h,
//   CheckJsonVerdict);
// - an event has a valid type (core/event_rules.h) under "workspace_one.",
//   the workspace_one payload naming the same EventType as the action, the
//   fixed source and content type, the body byte for byte as data, a device
//   (when set) of provider workspace_one with an identifier and the event's
//   platform, an Apple UDID without lowercase letters, a subject naming the
//   DeviceId, a key that is its UDID, else its serial number, else the
//   subject, valid times if any, and no id, sequence or time;
// - the event survives serialization inside three enclosing messages.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/algorithm/container.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/event_rules.h"
#include "fuzz/fuzz_check.h"
#include "hookfan/v1/event.pb.h"
#include "ingress/json_body.h"
#include "ingress/workspace_one_normalizer.h"

namespace {

using ::hookfan::fuzz::Check;
using ::hookfan::fuzz::CheckDeviceKey;
using ::hookfan::fuzz::CheckSurvivesNesting;
using ::hookfan::v1::Event;

void CheckEvent(std::string_view body, const Event& event) {
  const std::string shown = event.ShortDebugString();
  Check(hookfan::broker::IsValidEventType(event.type()), "invalid type", shown);
  Check(event.type().starts_with("workspace_one."), "type not workspace_one.*", shown);
  Check(event.payload_case() == Event::kWorkspaceOne, "payload is not workspace_one", shown);
  Check(!event.action().empty() && event.workspace_one().event_type() == event.action(),
        "action is not the EventType", shown);
  Check(event.source() == "/webhooks/workspace_one", "source", shown);
  Check(event.data_content_type() == "application/json", "data_content_type", shown);
  Check(event.data() == body, "data is not the body byte for byte", shown);
  Check(event.id().empty() && event.sequence() == 0 && !event.has_time(),
        "id, sequence or time set", shown);
  if (event.has_source_time()) {
    Check(hookfan::broker::IsValidTimestamp(event.source_time()), "source_time range", shown);
  }
  if (event.workspace_one().has_compromised_time()) {
    Check(hookfan::broker::IsValidTimestamp(event.workspace_one().compromised_time()),
          "compromised_time range", shown);
  }
  const int64_t device_id = event.workspace_one().device_id();
  Check(event.subject() == (device_id > 0 ? absl::StrCat("devices/", device_id) : ""), "subject",
        shown);
  if (event.has_device()) {
    const hookfan::v1::DeviceIdentity& d = event.device();
    Check(d.provider() == "workspace_one" && d.platform() == event.platform(),
          "device provider or platform", shown);
    Check(!d.id().empty() || !d.serial_number().empty() || !d.udid().empty(),
          "device without an identifier", shown);
    Check(d.id().empty() == (device_id <= 0), "device id is not the DeviceId", shown);
    if (d.platform() == hookfan::v1::PLATFORM_APPLE) {
      // 32 or 24 hex digits, with any dashes: Apple's spelling.
      std::string digits;
      for (char c : d.udid()) {
        if (c != '-') digits += c;
      }
      const bool hex = absl::c_all_of(digits, [](char c) {
        return absl::ascii_isxdigit(static_cast<unsigned char>(c));
      });
      if (hex && (digits.size() == 32 || digits.size() == 24)) {
        const std::string upper = absl::AsciiStrToUpper(digits);
        const std::string apple =
            digits.size() == 32
                ? absl::StrCat(upper.substr(0, 8), "-", upper.substr(8, 4), "-",
                               upper.substr(12, 4), "-", upper.substr(16, 4), "-", upper.substr(20))
                : absl::StrCat(upper.substr(0, 8), "-", upper.substr(8));
        Check(d.udid() == apple, "Apple UDID not in Apple's spelling", shown);
      }
    }
    Check(d.udid() != "System.Byte[]", "junk UDID kept", shown);
  } else {
    Check(device_id <= 0, "a DeviceId without a device", shown);
  }
  CheckDeviceKey(event);

  CheckSurvivesNesting(event);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return hookfan::fuzz::FuzzJsonNormalizer(data, size, hookfan::ingress::NormalizeWorkspaceOne,
                                           hookfan::ingress::kMaxJsonDepth, CheckEvent);
}
