#pragma once

// The CloudEvents HTTP protocol binding, receiving side: one HTTP request in
// (its Content-Type, headers and body), one hookfan.v1.Event out. Version
// 1.0 of the spec, JSON event format; no HTTP types, no I/O, no clock.
// https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/bindings/http-protocol-binding.md

#include <functional>
#include <optional>
#include <span>
#include <string_view>

#include "absl/status/statusor.h"
#include "hookfan/v1/event.pb.h"
#include "ingress/normalizer.h"

namespace hookfan::ingress {

// ParseCloudEvent reads the CloudEvent one HTTP request carries. Pure and
// thread-safe. Leaves id, sequence and time unset: the caller mints them.
//
// The mode follows from the request, as the binding says:
// - Structured: `content_type` is application/cloudevents+json (any letter
//   case, parameters ignored). The body is a JSON object (nested at most
//   32 levels, kMaxJsonDepth in ingress/json_normalizer.h) holding the
//   attributes: specversion ("1.0"), id, source, type (non-empty strings,
//   required); subject, time (RFC 3339), datacontenttype, dataschema
//   (strings, optional; "" or null is absent); data or data_base64. Every
//   other member is an extension attribute, named by 1 to 20 lowercase
//   letters or digits, whose value is a string, an integer or a boolean
//   (null: absent). `data` is stored as compact
//   JSON text when datacontenttype is absent (data_content_type becomes
//   "application/json") or names JSON (subtype "json" or "+json" suffix);
//   otherwise it must be a string, stored as its bytes. data_base64 is
//   stored decoded, with datacontenttype as given. ce-* headers are ignored.
// - Binary: a ce-specversion header, any other content type. Attributes
//   come from ce-<name> headers, values percent-decoded (%XX) and then
//   valid UTF-8: ce-specversion, ce-id, ce-source, ce-type (required,
//   non-empty); ce-subject, ce-time, ce-dataschema (optional; "" is
//   absent); each other ce-<name> among `header_names` is the extension
//   <name> (same naming rule; "data" is reserved). `content_type` is the
//   data_content_type, `body` the data, verbatim. A ce-datacontenttype
//   header is ignored: the binding carries that attribute in Content-Type.
//
// `header` looks a header up by its lowercase name. `header_names` lists
// the request's header names (any letter case, repeats allowed): the only
// way to find extension headers in binary mode. Without it, binary mode
// keeps no extensions.
//
// Sets source, type, source_event_id (the CloudEvent id), subject,
// source_time (from time), data_schema, extensions, data_content_type,
// data, and key: the partitionkey extension when non-empty, else subject.
//
// Errors carry messages in printable ASCII, fit to return to the sender.
// kFailedPrecondition (answer 415 Unsupported Media Type) when the request
// is no CloudEvent hookfan takes:
//   "batch mode (application/cloudevents-batch+json) is not supported: send
//    one event per request"
//   "structured mode format application/cloudevents+xml is not supported:
//    use application/cloudevents+json or binary mode"
//   "not a CloudEvent: expected Content-Type application/cloudevents+json
//    (structured mode) or a ce-specversion header (binary mode), got
//    Content-Type \"text/plain\"" (or "got no Content-Type")
// kInvalidArgument (answer 400) for a malformed event; the message names
// the attribute as `attribute "id"` in structured mode, `header ce-id` in
// binary mode:
//   "body is not valid JSON: at byte N: <parser detail>"
//   "JSON nested too deeply (more than 32 levels)"
//   "body must be a JSON object, got array" (…)
//   "missing required attribute \"id\"" / "missing required header ce-id"
//   "attribute \"id\" must be a string, got number" (…)
//   "attribute \"id\" must not be empty" / "header ce-id must not be empty"
//   "attribute \"specversion\" must be \"1.0\", got \"0.3\""
//   "attribute \"type\" is not a valid event type: <reason>" (see
//    CheckEventType in core/event_rules.h)
//   "attribute \"time\" must be an RFC 3339 timestamp like
//    \"2018-04-05T17:31:00Z\", got \"yesterday\""
//   "attribute \"time\" is outside years 0001 to 9999 in UTC"
//   "attributes \"data\" and \"data_base64\" are mutually exclusive"
//   "attribute \"data\" must be a string when datacontenttype
//    \"text/plain\" is not JSON, got object" (…)
//   "attribute \"data_base64\" is not valid base64"
//   "attribute name \"Foo\" is not allowed: extension attribute names are 1
//    to 20 lowercase letters or digits"
//   "extension attribute \"n\" must be a string, an integer or a boolean,
//    got object" (array, non-integer number)
//   "header ce-foo-bar: extension attribute names are 1 to 20 lowercase
//    letters or digits"
//   "header ce-data: \"data\" is reserved for the event payload"
//   "header ce-subject has a malformed percent-encoding at byte 3 (expected
//    %XX)"
//   "header ce-subject is not valid UTF-8 after percent-decoding"
//   "Content-Type is not valid UTF-8"
absl::StatusOr<hookfan::v1::Event> ParseCloudEvent(
    std::string_view content_type,
    const std::function<std::optional<std::string_view>(
        std::string_view lowercase_name)>& header,
    std::string_view body, std::span<const std::string_view> header_names = {});

// The "cloudevents" kind: a CloudEvent in the structured or binary HTTP
// binding (ParseCloudEvent); its own source attribute is kept. Dedup unless
// configured: the event id for 24 hours.
extern const NormalizerKind kCloudEventsNormalizer;

}  // namespace hookfan::ingress
