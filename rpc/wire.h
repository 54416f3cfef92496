#pragma once

// What goes on the wire of the gRPC port besides the generated messages:
// Subscribe responses framed from stored bytes, and statuses.

#include <vector>

#include "absl/status/status.h"
#include "grpcpp/grpcpp.h"
#include "store/event_log.h"

namespace hookfan::broker {

// Encodes events as a SubscribeResponse (field 1, repeated Event) by
// concatenating their stored wire encodings: no per-subscriber
// re-serialization.
grpc::ByteBuffer EncodeSubscribeResponse(const std::vector<EventPtr>& events);

// Converts an absl::Status to a grpc::Status with the same code and message,
// except that a store that cannot serve (kUnavailable, not shutdown) is told
// as kStoreUnavailable: its internals are for hookfan's log.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace hookfan::broker
