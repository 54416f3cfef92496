#pragma once

// The rules every stored event's envelope obeys, whichever ingest path (a
// webhook's normalizer, EventBroker.Publish) produced it, each written
// once: the grammar of types, the names an extension attribute may have,
// and the range of a timestamp. What checks a whole event before it is
// stored is core/ingest.h.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "google/protobuf/timestamp.pb.h"

namespace hookfan::broker {

// The longest event type accepted, in bytes.
inline constexpr size_t kMaxEventTypeLength = 255;

// The longest Event.key a producer may set, in bytes (and so the longest a
// latest-per-key lookup names).
inline constexpr size_t kMaxKeyLength = 1024;

// CheckEventType returns OK when `type` can name events: 1 to 255 bytes of
// dot-separated tokens, each one or more of a-z 0-9 "_" "-" (lowercase, as
// event.proto promises subscribers, so a filter written in lowercase never
// misses an event spelled otherwise). So no token is empty and no token is
// "*" or ">", which subscription filters read as wildcards
// (core/filter.h). Pure and thread-safe.
//
// Otherwise kInvalidArgument whose message is the reason alone, for the
// caller to say which type it was ("attribute \"type\" is not a valid event
// type: " + message):
//   "it is empty"
//   "it is longer than 255 bytes"
//   "\"*\" and \">\" are subscription wildcards, not allowed in a type"
//   "it has an empty token (a leading, trailing or doubled \".\")"
//   "' ' at byte 4 is not allowed: tokens are a-z 0-9 _ -"
//   "'O' at byte 12 is not allowed: tokens are a-z 0-9 _ - (types are lowercase)"
//     (a byte that is not printable ASCII shows as '\xNN')
absl::Status CheckEventType(std::string_view type);

// CheckEventType(type).ok().
bool IsValidEventType(std::string_view type);

// `type` as a webhook normalizer stores it: ASCII letters lowercased. A
// webhook's sender chose its type and cannot be asked to change it
// ("Invoice.Paid" is stored as "invoice.paid"); a Publish caller chooses,
// so Publish refuses an upper-case type instead.
std::string LowercaseEventType(std::string_view type);

// `value` in double quotes for an error message, cut after 64 bytes
// ("\"abc...\" (300 bytes)"): how every rule here names a bad value.
std::string QuoteForError(std::string_view value);

// The longest extension attribute name (CloudEvents: 1 to 20 lowercase
// letters or digits).
inline constexpr size_t kMaxExtensionNameLength = 20;

// Whether `name` may name an extension attribute: [a-z0-9]{1,20}. The
// CloudEvents attributes themselves (IsCloudEventsAttribute) pass this too;
// callers refuse them where an extension is meant.
bool IsExtensionName(std::string_view name);

// Whether `name` is a CloudEvents context attribute or "data", which no
// extension may be named after: id, source, specversion, type,
// datacontenttype, dataschema, subject, time, data.
bool IsCloudEventsAttribute(std::string_view name);

// Years 0001 to 9999 in UTC, what google.protobuf.Timestamp can hold.
inline constexpr int64_t kMinTimestampSeconds = -62135596800;
inline constexpr int64_t kMaxTimestampSeconds = 253402300799;

// Whether `ts` is within that range with nanos in [0, 999999999].
bool IsValidTimestamp(const google::protobuf::Timestamp& ts);

}  // namespace hookfan::broker
