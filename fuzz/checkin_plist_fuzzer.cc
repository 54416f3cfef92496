// Fuzzes the check-in property list that NormalizeNanoMdm reads with
// libplist (ingress/nanomdm_normalizer.h): the input is the property list's
// bytes (XML or binary), sent base64 in an mdm.Authenticate body. Checks
// that whatever the list holds, the event is stored with its device named
// by the UDID, and what was read from the list (serial number, name, OS
// version) is valid UTF-8 of at most 64 KiB and survives serialization.
//
// Debian's libplist is not instrumented, so coverage guides only through
// hookfan's side; its crashes, and out-of-bounds reads that reach hookfan,
// are still caught. Seeds: fuzz/corpus/checkin_plist (Apple's XML and a
// binary Authenticate message).

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "fuzz/fuzz_check.h"
#include "google/protobuf/stubs/common.h"
#include "hookfan/v1/event.pb.h"
#include "ingress/nanomdm_normalizer.h"

namespace {

using ::hookfan::fuzz::Check;

void CheckRead(const std::string& value, const char* what, const std::string& shown) {
  Check(value.size() <= 64 * 1024, what, shown);
  Check(google::protobuf::internal::IsStructurallyValidUTF8(value.data(),
                                                            static_cast<int>(value.size())),
        what, shown);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string plist(reinterpret_cast<const char*>(data), size);
  const std::string body = absl::StrCat(
      R"({"topic":"mdm.Authenticate","checkin_event":{"udid":"U1","raw_payload":")",
      absl::Base64Escape(plist), R"("}})");
  absl::StatusOr<hookfan::v1::Event> event = hookfan::ingress::NormalizeNanoMdm(body);
  Check(event.ok(), "an Authenticate body was refused for its property list",
        event.status().ToString());
  const std::string shown = event->ShortDebugString();
  Check(event->apple_mdm_checkin().raw_payload() == plist, "raw_payload is not the list", shown);
  Check(event->device().udid() == "U1" && event->device().id() == "U1" && event->key() == "U1",
        "device not named by the UDID", shown);
  CheckRead(event->device().serial_number(), "serial number", shown);
  CheckRead(event->device().name(), "name", shown);
  CheckRead(event->device().os_version(), "OS version", shown);
  hookfan::fuzz::CheckSurvivesNesting(*event);
  return 0;
}
