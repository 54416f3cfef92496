#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "nlohmann/json.hpp"

namespace hookfan::ingress {

// The deepest JSON nesting a webhook body may have, counting the body as
// level 1. Every stored event's payload must stay parseable by protobuf
// clients, whose own nesting limits are not much higher, and the
// normalizers recurse over what they parse.
inline constexpr int kMaxJsonDepth = 32;

// ParseJsonBody parses `body` as one JSON value nested at most kMaxJsonDepth
// levels. nlohmann's parser is iterative: no depth exhausts the stack. The
// text is read once without building anything, stopping at the first
// problem, and the tree is built only for a body that passed: memory does
// not grow with the depth a sender tries. Errors, kInvalidArgument, naming
// the problem that comes first in the text:
//   "body is not valid JSON: at byte N: <parser detail>"
//   "JSON nested too deeply (more than 32 levels)"
// (so a million unclosed '[' are refused as too deep at byte 33).
absl::StatusOr<nlohmann::json> ParseJsonBody(std::string_view body);

// `text` made safe to echo in an error message: printable ASCII only (other
// bytes as \xNN), at most 160 bytes of it, then "...".
std::string PrintableForError(std::string_view text);

// Type-guarded reads for the normalizers, which take what a payload holds
// and leave the rest empty: a missing member, or one of another JSON type,
// reads as absent.
//
// `(*j)[key]`, or null when `j` is null, not an object or lacks `key`.
const nlohmann::json* JsonMember(const nlohmann::json* j, std::string_view key);
// JsonMember, keeping only an object.
const nlohmann::json* JsonObjectMember(const nlohmann::json* j, std::string_view key);
// The string `j` holds, or "".
std::string JsonString(const nlohmann::json* j);
// The integer `j` holds, as a JSON integer or as a decimal string (some
// senders quote their ids); else 0.
int64_t JsonInt64(const nlohmann::json* j);

// The webhook body `body` as a JSON object whose member `name` is a
// non-empty string: what a provider's normalizer requires before reading
// the rest. Errors, kInvalidArgument, fit to return to the sender:
//   ParseJsonBody's
//   "body must be a JSON object, got array" (string, number, boolean, null)
//   "missing required field \"<name>\""
//   "field \"<name>\" must be a string, got number" (…)
//   "field \"<name>\" must not be empty"
absl::StatusOr<nlohmann::json> ParseJsonObjectWith(std::string_view body, std::string_view name);

// `object`'s members into `out`, recursively: numbers as doubles, null as
// NULL_VALUE. The recursion is bounded by kMaxJsonDepth for a value from
// ParseJsonBody.
void JsonToStruct(const nlohmann::json& object, google::protobuf::Struct* out);

// An RFC 3339 date-time (YYYY-MM-DDThh:mm:ss[.fraction](Z|+hh:mm|-hh:mm),
// "T" and "Z" in either case) as a Timestamp in years 0001 to 9999.
// `where` names the field in the errors, kInvalidArgument:
//   "<where> must be an RFC 3339 timestamp like \"2018-04-05T17:31:00Z\", got \"...\""
//   "<where> is outside years 0001 to 9999 in UTC"
absl::StatusOr<google::protobuf::Timestamp> ParseRfc3339Timestamp(std::string_view where,
                                                                  std::string_view text);

// Epoch milliseconds (before 1970 too) as a Timestamp; nullopt outside
// years 0001 to 9999.
std::optional<google::protobuf::Timestamp> TimestampFromUnixMillis(int64_t ms);

}  // namespace hookfan::ingress
