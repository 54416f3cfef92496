#pragma once

// The rule every Event.type obeys, whichever ingest path (a webhook's
// normalizer, EventBroker.Publish) produced it: the one grammar of types.

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace hookfan::broker {

// The longest event type accepted, in bytes.
inline constexpr size_t kMaxEventTypeLength = 255;

// CheckEventType returns OK when `type` can name events: 1 to 255 bytes of
// dot-separated tokens, each one or more of a-z 0-9 "_" "-" (lowercase, as
// event.proto promises subscribers, so a filter written in lowercase never
// misses an event spelled otherwise). So no token is empty and no token is
// "*" or ">", which subscription filters read as wildcards
// (broker/filter.h). Pure and thread-safe.
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

}  // namespace hookfan::broker
