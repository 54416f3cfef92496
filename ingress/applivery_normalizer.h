#pragma once

// The Applivery normalizer: one webhook body (JSON) in, one hookfan.v1.Event
// out. No HTTP types, no I/O, no clock.

#include <string_view>

#include "absl/status/statusor.h"
#include "hookfan/v1/event.pb.h"
#include "ingress/json_body.h"
#include "ingress/normalizer.h"

namespace hookfan::ingress {

// The deepest JSON nesting NormalizeApplivery accepts, counting the body
// object as level 1 and each object or array inside it as one more. Payloads
// carry the body as a google.protobuf.Struct, which costs up to three
// protobuf message levels per JSON level, and protobuf parsers refuse
// messages nested over 100 levels by default: at 32, an event still parses
// inside three enclosing messages (e.g. a stream response); much deeper, no
// subscriber could read it. Applivery's own payloads nest 3 levels.
inline constexpr int kAppliveryMaxJsonDepth = kMaxJsonDepth;

// NormalizeApplivery turns one Applivery webhook body into an Event.
// Pure and thread-safe.
//
// Sets source ("/webhooks/applivery"), type, subject, platform,
// platform_prefix, organization, action, sub_action, key, data_content_type
// ("application/json"), data (`body` byte for byte) and the typed payload.
// Leaves id, sequence and time unset: the caller mints them. The subject is
// "devices/<id>" when the body names a device id (the "id" query parameter
// of its URL), else "mdm-users/<id>", else "inventory-items/<id>", else
// empty; the key is the device id, else the organization id. When the body
// names a device, device (the envelope's DeviceIdentity) is provider
// "applivery", the device id, the platform and the user's e-mail: Applivery
// sends no serial number, UDID, name or OS version.
//
// Only "action" is required. Every other field is read when present with the
// expected JSON type and otherwise left empty; a valid object whose action is
// not known becomes "applivery.unrecognized" with the body kept.
//
// Errors, all kInvalidArgument with a message naming the problem in printable
// ASCII, fit to return to the sender:
//   "body is not valid JSON: at byte N: <parser detail>"
//   "JSON nested too deeply (more than 32 levels)"
//   "body must be a JSON object, got array" (string, number, boolean, null)
//   "missing required field \"action\""
//   "field \"action\" must be a string, got number" (…)
//   "field \"action\" must not be empty"
absl::StatusOr<hookfan::v1::Event> NormalizeApplivery(std::string_view body);

// The "applivery" kind: a JSON body (else 415) normalized by
// NormalizeApplivery, with the source's path as the event's source. Dedup
// unless configured: body hash for 10 minutes. Applivery sends no id or
// timestamp, so a retry is byte-identical, but so is a genuinely repeated
// event (a device enrolled twice), hence the short window.
extern const NormalizerKind kAppliveryNormalizer;

}  // namespace hookfan::ingress
