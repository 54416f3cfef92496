#pragma once

// What a Publish request may carry, and the event it makes.

#include "absl/status/statusor.h"
#include "hookfan/v1/broker.pb.h"
#include "hookfan/v1/event.pb.h"

namespace hookfan::broker {

// The source of a published event whose request names none.
inline constexpr char kDefaultPublishSource[] = "/grpc/publish";

// Checks a PublishRequest and turns it into the event to store, with source
// and key defaulted (see broker.proto) and source_event_id / source_time
// taken from the request's id and time. The hookfan id, time and sequence
// are left for the caller to set. Errors: kInvalidArgument naming the
// offending field.
absl::StatusOr<v1::Event> EventFromPublishRequest(
    const v1::PublishRequest& request);

}  // namespace hookfan::broker
