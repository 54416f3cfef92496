#pragma once

// The one way an event enters the log, whichever path brought it (a
// webhook, EventBroker.Publish): the rules every stored event obeys are
// checked here, once, and nowhere else.

#include <cstddef>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "broker/event_log.h"
#include "hookfan/v1/event.pb.h"

namespace hookfan::broker {

// gRPC's default limit on a message a client receives (4 MiB). hookfan
// cannot know a client's own limit, so it assumes this one.
inline constexpr size_t kDefaultClientReceiveBytes = 4 << 20;

// A response carrying several events stops before its events' wire
// encodings pass this many bytes; a larger single event goes alone. Well
// under kDefaultClientReceiveBytes, so a batch always reaches a default
// client.
inline constexpr size_t kMaxResponseEventBytes = 1 << 20;

// The largest event a default client can receive alone: its own response
// with room for the framing around it (Delivery fields, DeadLetter fields).
inline constexpr size_t kMaxDeliverableEventBytes = kDefaultClientReceiveBytes - (16 << 10);

// Default of --max-event-bytes: the largest stored event (wire encoding).
inline constexpr size_t kDefaultMaxEventBytes = 1 << 20;

// The largest --max-event-bytes accepted at start-up (a larger stored event
// could not reach a default client) and the smallest (an envelope alone
// needs a few hundred bytes).
inline constexpr size_t kMaxMaxEventBytes = kMaxDeliverableEventBytes;
inline constexpr size_t kMinMaxEventBytes = 4 << 10;

// What Ingest enforces.
struct IngestRules {
  // The largest serialized event (Event.ByteSizeLong(), what the log stores
  // and subscribers receive: envelope, typed payload and the raw body).
  size_t max_event_bytes = kDefaultMaxEventBytes;
};

// ValidateType returns OK when `type` may name a stored event, else
// kInvalidArgument "type \"X\" is not a valid event type: <reason>"
// (CheckEventType in broker/event_rules.h; X cut after 64 characters).
absl::Status ValidateType(std::string_view type);

// CheckEvent returns OK when `event` may be stored under `rules`:
//   kInvalidArgument "type \"X\" is not a valid event type: <reason>"
//     (CheckEventType in broker/event_rules.h)
//   kResourceExhausted "the event is N bytes; the limit is M
//     (--max-event-bytes)"
// Pure and thread-safe.
absl::Status CheckEvent(const v1::Event& event, const IngestRules& rules);

// Ingest checks `event` (CheckEvent) and appends it to `log`: with
// AppendOnce(event, dedup_key, window) when `dedup_key` is non-empty, else
// with Append. On OK the event (or, for a duplicate, the original) is
// durable. Errors: CheckEvent's (nothing stored); else the log's (see
// EventLog::Append: kUnavailable when the store cannot take writes).
// Thread-safe; `log` must be.
absl::StatusOr<AppendOnceResult> Ingest(EventLog* log, v1::Event event,
                                        std::string_view dedup_key, absl::Duration window,
                                        const IngestRules& rules);

}  // namespace hookfan::broker
