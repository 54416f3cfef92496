// Fuzzes NormalizeNanoMdm (ingress/nanomdm_normalizer.h): the input is one
// webhook body. Checks the contract, not only that nothing crashes:
// - an error is kInvalidArgument with a printable-ASCII message, and it is
//   the documented one for text that is no JSON and for JSON nested deeper
//   than kMaxJsonDepth, whichever comes first in the text (fuzz_check.h,
//   CheckJsonVerdict);
// - an event has a valid type (core/event_rules.h) under "nanomdm.", the
//   payload its type names, the fixed source, platform and content type,
//   the body byte for byte as data, the topic as a non-empty action, a
//   device, subject and key that agree (the UDID), a valid source_time if
//   any, and no id, sequence or time;
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
#include "ingress/json_body.h"
#include "ingress/nanomdm_normalizer.h"

namespace {

using ::hookfan::fuzz::Check;
using ::hookfan::fuzz::CheckSurvivesNesting;
using ::hookfan::v1::Event;

void CheckEvent(std::string_view body, const Event& event) {
  const std::string shown = event.ShortDebugString();
  Check(hookfan::broker::IsValidEventType(event.type()), "invalid type", shown);
  Check(event.type().starts_with("nanomdm."), "type not nanomdm.*", shown);
  switch (event.payload_case()) {
    case Event::kAppleMdmCheckin:
      Check(event.type() != "nanomdm.unrecognized" && event.type() != "nanomdm.command.reported",
            "check-in payload under another type", shown);
      Check(event.apple_mdm_checkin().topic() == event.action(), "check-in topic", shown);
      break;
    case Event::kAppleMdmCommandReport:
      Check(event.type() == "nanomdm.command.reported", "report payload under another type", shown);
      Check(event.action() == "mdm.Connect", "report topic", shown);
      break;
    case Event::kUnrecognized:
      Check(event.type() == "nanomdm.unrecognized", "unrecognized payload under a type", shown);
      break;
    default:
      Check(false, "payload is none of the three", shown);
  }
  Check(event.source() == "/webhooks/nanomdm", "source", shown);
  Check(event.platform() == hookfan::v1::PLATFORM_APPLE, "platform", shown);
  Check(event.data_content_type() == "application/json", "data_content_type", shown);
  Check(event.data() == body, "data is not the body byte for byte", shown);
  Check(!event.action().empty(), "empty action", shown);
  Check(event.id().empty() && event.sequence() == 0 && !event.has_time(),
        "id, sequence or time set", shown);
  if (event.has_source_time()) {
    Check(hookfan::broker::IsValidTimestamp(event.source_time()), "source_time range", shown);
  }
  if (event.has_device()) {
    const std::string& udid = event.device().udid();
    Check(!udid.empty() && event.device().id() == udid && event.device().provider() == "nanomdm",
          "device", shown);
    Check(event.key() == udid, "key is not the UDID", shown);
    Check(event.subject() == "devices/" + udid, "subject is not the device", shown);
  } else {
    Check(event.subject().empty(), "subject without a device", shown);
  }

  CheckSurvivesNesting(event);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return hookfan::fuzz::FuzzJsonNormalizer(data, size, hookfan::ingress::NormalizeNanoMdm,
                                           hookfan::ingress::kMaxJsonDepth, CheckEvent);
}
