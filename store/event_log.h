#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "hookfan/v1/event.pb.h"

namespace hookfan::broker {

// StoredEvent is a committed event together with its protobuf wire encoding,
// computed once so fan-out never re-serializes per subscriber. Immutable and
// shared (EventPtr) between the store, the live window and subscriptions.
struct StoredEvent {
  v1::Event event;   // sequence is set
  std::string wire;  // event.SerializeAsString()
};
using EventPtr = std::shared_ptr<const StoredEvent>;

// What a client is told when the store cannot serve it now (a NATS outage, a
// full disk): one routine condition, one message for every store, call and
// edge. The store's own reason goes to hookfan's log, not to clients.
inline constexpr char kStoreUnavailable[] = "the event store is unavailable; retry";

// The error of every call into a log, fan-out or consumer groups once
// hookfan shuts down. Any other kUnavailable from them means the store
// cannot serve now.
absl::Status ShuttingDownError();
bool IsShuttingDown(const absl::Status& status);

// Wraps an event (sequence already assigned) and encodes it.
EventPtr MakeStoredEvent(v1::Event event);

// The checks every store makes before appending: each event has an id and a
// type. Errors: kInvalidArgument naming the first offending event.
absl::Status ValidateBatch(absl::Span<const v1::Event> events);

// The device directory: what the log remembers of each device so that an
// event naming its device by UDID alone (NanoMDM's check-ins and command
// reports after the first) still carries its serial number, and a
// subscriber filtering on a serial number sees the device's events from
// every MDM. An appended event whose Event.device has both a UDID and a
// serial number teaches the pair (DeviceRecordOf); a UDID's serial number
// is taken not to change (both are the hardware's).
struct DeviceRecord {
  std::string_view udid;
  std::string_view serial_number;
};

// What `event` teaches the device directory: its device's UDID and serial
// number when it names both, else nullopt. The views point into `event`.
std::optional<DeviceRecord> DeviceRecordOf(const v1::Event& event);

// CommitListener learns of events after they are durable, never before.
class CommitListener {
 public:
  virtual ~CommitListener() = default;
  // `events` are newly committed, in increasing sequence order, and follow
  // the previous call's events with no gap in what this log holds. Calls are
  // serialized (never concurrent). Must not block for long and must not call
  // Append on the same log.
  virtual void OnCommit(const std::vector<EventPtr>& events) = 0;

  // The store became unreachable (a JetStream log lost NATS): readers
  // holding live state should end so that clients resume, here once the
  // store is back or on another replica. Commits resume with no gap when
  // it returns. Same rules as OnCommit.
  virtual void OnStoreUnavailable(const absl::Status& /*why*/) {}

  // The log opened after the listener was set (a JetStream log that started
  // before NATS answered) and holds events up to `last_sequence`: commits
  // follow it. May be told more than once. Same rules as OnCommit.
  virtual void OnStoreOpened(uint64_t /*last_sequence*/) {}
};

// One key's entries in the latest view (see EventLog::GetLatest).
struct KeyLatest {
  std::string key;
  std::vector<EventPtr> events;  // its newest event of each type, in sequence order
};

// The error of the latest-view calls on a store that keeps no such view.
absl::Status NoLatestViewError(std::string_view why);

// What AppendOnce did.
struct AppendOnceResult {
  std::string id;         // of the stored event: the new one, or the original
  uint64_t sequence = 0;  // likewise
  bool duplicate = false;  // true: an earlier event had the key; nothing stored
};

// EventLog is the durable, ordered log of events: the truth every
// subscription is a cursor on. Implementations: SqliteEventLog (embedded
// default), NatsEventLog (JetStream, shared by replicas), MemoryEventLog
// (tests only).
//
// All methods are thread-safe.
class EventLog {
 public:
  virtual ~EventLog() = default;

  // Appends `events` in order, assigning each the next sequence (written
  // back into events[i].sequence). On OK every event is durable: a crash
  // after return loses none of them. Concurrent callers may share one
  // commit (group commit). Sequences strictly increase and are never reused,
  // not even after the events holding them are deleted by retention.
  //
  // Errors: kInvalidArgument if an event lacks an id or type, or its id is
  // already stored (nothing of the batch is stored); kUnavailable if the
  // store cannot take writes now (disk full, I/O error, closed): nothing of
  // the batch is stored or becomes visible, and a later call may succeed.
  virtual absl::Status Append(absl::Span<v1::Event> events) = 0;

  // Appends `event` unless an event appended with the same `dedup_key` has
  // an event time within `window` before this one's; then nothing is stored
  // and the original's id and sequence come back with duplicate = true.
  // Race-free: of concurrent calls with one key, exactly one stores. The key
  // is remembered for `window` (by event time) and survives restarts as
  // long as the store does. Errors: as Append.
  virtual absl::StatusOr<AppendOnceResult> AppendOnce(v1::Event event,
                                                      std::string_view dedup_key,
                                                      absl::Duration window) = 0;

  // Returns committed events with sequence >= `from`, in order: at most
  // `max_events`, and stopping once `max_bytes` of wire encoding is reached
  // (always at least one event if any exists). Returns fewer or none at the
  // end of the log. Events below FirstSequence() are gone: the caller
  // compares the first returned sequence with `from` to detect that.
  //
  // Errors: kUnavailable on I/O failure; kDataLoss for a stored record that
  // does not decode.
  virtual absl::StatusOr<std::vector<EventPtr>> Read(
      uint64_t from, size_t max_events,
      size_t max_bytes = std::numeric_limits<size_t>::max()) = 0;

  // Returns the event with this id. Errors: kNotFound; as Read.
  virtual absl::StatusOr<EventPtr> GetById(std::string_view id) = 0;

  // Sequence of the oldest event held; LastSequence() + 1 when the log holds
  // none. Errors: kUnavailable on I/O failure.
  virtual absl::StatusOr<uint64_t> FirstSequence() = 0;

  // Highest committed sequence, 0 if nothing was ever appended. Cheap (no
  // I/O).
  virtual uint64_t LastSequence() const = 0;

  // Sequence of the first event whose time is >= t; LastSequence() + 1 if
  // none is. Errors: kUnavailable on I/O failure.
  virtual absl::StatusOr<uint64_t> SequenceAtTime(absl::Time t) = 0;

  // OK when the store can take appends now; otherwise kUnavailable saying
  // why (for /readyz). Cheap (no I/O).
  virtual absl::Status Ready() const { return absl::OkStatus(); }

  // OK once the log is open: LastSequence() is true and reads and appends
  // can be tried. Until then (a JetStream log waiting for NATS at start-up)
  // kUnavailable saying what it waits for, and every call but
  // LastSequence() fails with it. Cheap (no I/O).
  virtual absl::Status Opened() const { return absl::OkStatus(); }

  // How many writes the store refused since it opened, per reason (e.g.
  // "out_of_storage", "timeout"), for the hookfan_store_refusals_total
  // metric. Empty for stores that do not classify their refusals.
  virtual std::map<std::string, uint64_t> RefusalCounts() const { return {}; }

  // The serial number the device directory holds for `udid` (see
  // DeviceRecord): the newest appended event naming both taught it; "" when
  // none did. Every store learns from what it appends, as part of the
  // append, and keeps what it learned as long as the store lasts (retention
  // does not forget a device); a shared store answers for every replica.
  // Errors: kUnavailable when the store cannot answer now.
  virtual absl::StatusOr<std::string> DeviceSerialNumber(std::string_view udid) = 0;

  // The latest view: for each (Event.key, type) with a non-empty key, the
  // newest event appended. A store answers from it as of LatestThrough():
  // SQLite's is never behind the log, a crash included; NATS's trails it by
  // its writer's lag (and may be ahead of this replica's LastSequence()).
  // Stores that keep none fail the calls below with kFailedPrecondition
  // (NoLatestViewError).
  //
  // OK when the store keeps the view, else that error. Cheap (no I/O).
  virtual absl::Status LatestView() const;
  // The sequence up to which the view holds every event: a snapshot taken
  // now covers the log up to it. LastSequence() where the view is kept in
  // the append's transaction; less where it trails the log (NATS).
  // Errors: as LatestView, or as Read.
  virtual absl::StatusOr<uint64_t> LatestThrough();

  // ReadLatest returns the view's events with a sequence in [from, through]
  // (through is capped at LastSequence()), in sequence order, at most
  // `max_events`. An entry superseded meanwhile has moved above `through`
  // and is not returned. Errors: as Read.
  virtual absl::StatusOr<std::vector<EventPtr>> ReadLatest(uint64_t from, uint64_t through,
                                                           size_t max_events);
  // The view's events for `key`, in sequence order (none: empty). Errors: as
  // Read.
  virtual absl::StatusOr<std::vector<EventPtr>> GetLatest(std::string_view key);
  // The view's entries of the keys after `after_key`, in key order, for at
  // most `max_keys` keys; fewer when the view ends. Errors: as Read.
  virtual absl::StatusOr<std::vector<KeyLatest>> ListLatest(std::string_view after_key,
                                                            size_t max_keys);

  // Sets the listener told of every commit from now on (nullptr: none).
  // Set it before the first Append; the listener must outlive the log or be
  // cleared first.
  virtual void SetCommitListener(CommitListener* listener) = 0;
};

}  // namespace hookfan::broker
