#pragma once

// The generic JSON normalizer: a source's JSON body in, one hookfan.v1.Event
// out, typed as the source's JsonNormalizerConfig says. No HTTP types, no
// I/O, no clock. Also the JSON body parsing it shares with the CloudEvents
// parser (ingress/cloudevents.h).

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hookfan/v1/event.pb.h"
#include "ingress/json_body.h"
#include "ingress/normalizer.h"
#include "ingress/source_config.h"
#include "nlohmann/json.hpp"

namespace hookfan::ingress {

// CheckJsonNormalizerConfig returns OK when NormalizeJson can work with
// `config`: exactly one of type_pointer and type_header set, each pointer
// empty or valid RFC 6901 syntax ("/a/b", "~0" for "~", "~1" for "/"), and
// a type_prefix that can begin a valid event type (core/event_rules.h),
// e.g. "acme." or "acme.orders". For the sources file parser: a config it
// accepts never makes NormalizeJson fail for a reason of its own.
//
// Errors, kInvalidArgument:
//   "set exactly one of type_pointer and type_header"
//   "type_pointer \"a/b\" is not a JSON pointer: <detail>" (id_pointer too)
//   "type_prefix \"a..\" is not the start of a valid event type: <reason>"
absl::Status CheckJsonNormalizerConfig(const JsonNormalizerConfig& config);

// The rules CheckJsonNormalizerConfig applies, one field at a time, for a
// parser that points at the field. kInvalidArgument, the message naming
// the value but not the field:
//   "\"event.type\" is not a JSON pointer: <detail>"
//   "\"X Type\" is not an HTTP field name"
//   "\"a.*.\" is not the start of a valid event type: <reason>"
absl::Status CheckJsonPointer(const std::string& pointer);
absl::Status CheckTypeHeader(std::string_view header);
absl::Status CheckTypePrefix(std::string_view prefix);

// NormalizeJson turns one JSON body into an Event. Pure and thread-safe.
//
// Sets source (`source`), type (config.type_prefix + the string at
// config.type_pointer in the body, or + the value of the header
// config.type_header, looked up by its lowercase name), source_event_id
// (the string or number at config.id_pointer; a number as its JSON text),
// data_content_type ("application/json") and data (`body` byte for byte).
// Leaves id, sequence and time unset: the caller mints them. `header` is
// only called for config.type_header.
//
// Errors, all kInvalidArgument with a message in printable ASCII fit to
// return to the sender:
//   "body is not valid JSON: at byte N: <parser detail>"
//   "JSON nested too deeply (more than 32 levels)"
//   "body must be a JSON object, got array" (string, number, boolean, null)
//   "type pointer /event/type: not found in the body"
//   "type pointer /event/type: must be a string, got number" (…)
//   "type header x-event-type: missing from the request"
//   "event type \"acme.a b\" (from type pointer /event/type) is not valid:
//    ' ' at byte 6 is not allowed: tokens are a-z 0-9 _ -" (see
//    CheckEventType; likewise "(from type header x-event-type)")
//   "id pointer /id: not found in the body"
//   "id pointer /id: must be a string or a number, got object" (…)
//   "id pointer /id: must not be empty"
// A config that CheckJsonNormalizerConfig refuses is a caller bug; it fails
// with kInternal rather than crashing ("type_pointer \"x\" is not a JSON
// pointer: …").
absl::StatusOr<hookfan::v1::Event> NormalizeJson(
    const JsonNormalizerConfig& config, std::string_view source,
    const std::function<std::optional<std::string_view>(
        std::string_view lowercase_name)>& header,
    std::string_view body);

// The "json" kind: a JSON body (else 415) normalized by NormalizeJson with
// the source's `json` settings and its path as the event's source. Dedup
// unless configured: the event id for 24 hours when json.id_pointer is set,
// else none.
extern const NormalizerKind kJsonNormalizer;

}  // namespace hookfan::ingress
