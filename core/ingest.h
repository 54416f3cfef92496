#pragma once

// The one way an event enters the log, whichever path brought it (a
// webhook, EventBroker.Publish): the rules every stored event obeys are
// checked here, once, and nowhere else.

#include <cstddef>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "store/event_log.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/uuid.h"
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
// (CheckEventType in core/event_rules.h; X quoted by QuoteForError).
absl::Status ValidateType(std::string_view type);

// CheckEvent returns OK when `event` may be stored under `rules`:
//   kInvalidArgument "type \"X\" is not a valid event type: <reason>"
//     (CheckEventType in core/event_rules.h)
//   kResourceExhausted "the event is N bytes; the limit is M
//     (--max-event-bytes)"
// Pure and thread-safe.
absl::Status CheckEvent(const v1::Event& event, const IngestRules& rules);

// Where a normalized event goes to become durable: all the ingress needs of
// the broker. Implementations are thread-safe.
class EventSink {
 public:
  virtual ~EventSink() = default;

  // Stores `event` (its id and receive time are the sink's to set) and
  // returns where it went: with dedup when `dedup_key` is non-empty (an
  // event stored under the same key less than `window` before makes this
  // one a duplicate: the original is returned, nothing new stored). On OK
  // the event, or the original, is durable. Errors, nothing stored:
  //   kInvalidArgument, kResourceExhausted  the event breaks CheckEvent
  //   kUnavailable  the store cannot take writes now (retry)
  //   anything else the store said
  virtual absl::StatusOr<AppendOnceResult> Ingest(v1::Event event, std::string_view dedup_key,
                                                  absl::Duration window) = 0;

  // Gives `event` a new id, now as its receive time and a valid trace
  // (extensions["traceparent"], started here if it came with none), for a
  // path that answers with them or receives an event before it can store
  // it (Publish appends on its own executor): Ingest keeps them.
  virtual void Stamp(v1::Event* event) = 0;
};

// Ingestor is the one path by which events enter the log, for webhooks and
// EventBroker.Publish alike: it mints the id (UUIDv7) and receive time from
// the injected clock, makes the event carry a valid trace
// (CompleteTraceContext in core/trace_context.h), gives an event naming its
// device by UDID alone the serial number the log's device directory holds
// (DeviceRecord), checks the event (CheckEvent), chooses Append or
// AppendOnce, and counts append latency and store errors. Thread-safe;
// `log` must be, and outlive it.
class Ingestor final : public EventSink {
 public:
  struct Options {
    Clock* clock = Clock::Real();
    IngestRules rules;
    // Where to count append latency and store errors; null: not counted.
    // Must outlive the ingestor.
    metrics::Registry* metrics = nullptr;
  };

  Ingestor(EventLog* log, Options options);

  // EventSink. Ingest keeps what Stamp set.
  void Stamp(v1::Event* event) override;

  // EventSink. An event with no id is stamped first.
  absl::StatusOr<AppendOnceResult> Ingest(v1::Event event, std::string_view dedup_key,
                                          absl::Duration window) override;

 private:
  // Sets the serial number of an event's device known by UDID alone, when
  // the directory knows it. A directory that cannot answer leaves the event
  // as it came (counted); the append decides whether the store is up.
  void CompleteDevice(v1::Event* event);
  // CompleteTraceContext, counted.
  void CompleteTrace(v1::Event* event);

  EventLog* const log_;
  const Options options_;
  UuidV7Generator ids_;
  metrics::Histogram* append_seconds_ = nullptr;
  metrics::Counter* store_errors_ = nullptr;
  metrics::Counter* device_lookup_errors_ = nullptr;
  metrics::Counter* traces_started_ = nullptr;
  metrics::Counter* trace_values_dropped_ = nullptr;
};

}  // namespace hookfan::broker
