#pragma once

// The NanoMDM / MicroMDM normalizer: one webhook body (JSON) in, one
// hookfan.v1.Event out. Both servers post the same shape
// (https://github.com/micromdm/nanomdm/blob/main/docs/operations-guide.md,
// "-webhook-url"; tests/fixtures/nanomdm/README.md):
//   {"topic": "mdm.Authenticate", "event_id": "...", "created_at": "<RFC 3339>",
//    "checkin_event": {"udid", "enrollment_id", "url_params", "raw_payload",
//                      "token_update_tally"}}
// or, for topic mdm.Connect (a command report),
//    "acknowledge_event": {"udid", "enrollment_id", "url_params", "raw_payload",
//                          "command_uuid", "status"}
// NanoMDM sends no event_id; raw_payload is the device's property list in
// base64. No HTTP types, no I/O, no clock.

#include <string_view>

#include "absl/status/statusor.h"
#include "hookfan/v1/event.pb.h"
#include "ingress/normalizer.h"

namespace hookfan::ingress {

// NormalizeNanoMdm turns one NanoMDM or MicroMDM webhook body into an Event.
// Pure and thread-safe.
//
// Sets source ("/webhooks/nanomdm"), type (by topic, below), action (the
// topic verbatim), source_event_id (event_id; "" from NanoMDM), source_time
// (created_at, unless it is not RFC 3339 or is Go's zero time
// 0001-01-01T00:00:00Z), platform (Apple), subject ("devices/<udid>"), key
// (the UDID, else the enrollment id), device (provider "nanomdm", id and
// udid the UDID, platform Apple; for a check-in whose property list names
// them, as mdm.Authenticate's does, its SerialNumber, DeviceName and
// OSVersion), data_content_type ("application/json"),
// data (`body` byte for byte) and the typed payload:
//   mdm.Authenticate           nanomdm.device.authenticated
//   mdm.TokenUpdate            nanomdm.device.token_updated
//   mdm.CheckOut               nanomdm.device.checked_out
//   mdm.UserAuthenticate       nanomdm.user.authenticated
//   mdm.SetBootstrapToken      nanomdm.bootstrap_token.set
//   mdm.GetBootstrapToken      nanomdm.bootstrap_token.requested
//   mdm.DeclarativeManagement  nanomdm.declarative_management.requested
//   mdm.GetToken               nanomdm.token.requested
//                              (payload apple_mdm_checkin)
//   mdm.Connect                nanomdm.command.reported
//                              (payload apple_mdm_command_report)
//   any other topic            nanomdm.unrecognized (payload unrecognized)
// Leaves id, sequence and time unset: the caller mints them.
//
// Only "topic" is required. Every other field is read when present with the
// expected JSON type and otherwise left empty (a raw_payload that is not
// base64 included: the body is kept whole in data).
//
// Errors, all kInvalidArgument with a message in printable ASCII, fit to
// return to the sender:
//   "body is not valid JSON: at byte N: <parser detail>"
//   "JSON nested too deeply (more than 32 levels)"
//   "body must be a JSON object, got array" (string, number, boolean, null)
//   "missing required field \"topic\""
//   "field \"topic\" must be a string, got number" (…)
//   "field \"topic\" must not be empty"
absl::StatusOr<hookfan::v1::Event> NormalizeNanoMdm(std::string_view body);

// The "nanomdm" kind: a JSON body (else 415) normalized by NormalizeNanoMdm,
// with the source's path as the event's source. Stored webhooks are
// answered 200, not 202: NanoMDM counts any other status as a failure (and
// neither server retries). Dedup unless configured: body hash for 10
// minutes (created_at has nanoseconds, so two events never share a body);
// a MicroMDM source may choose dedup key event_id.
extern const NormalizerKind kNanoMdmNormalizer;

}  // namespace hookfan::ingress
