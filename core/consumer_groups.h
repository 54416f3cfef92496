#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "store/event_log.h"
#include "hookfan/v1/broker.pb.h"

namespace hookfan::broker {

// Defaults and limits of a ConsumerOpen, the same for every implementation.
inline constexpr uint32_t kDefaultMaxInFlight = 64;
inline constexpr uint32_t kMaxMaxInFlight = 10000;
inline constexpr uint32_t kDefaultMaxDeliveries = 5;
inline constexpr absl::Duration kDefaultAckDeadline = absl::Seconds(30);

// One event leased to a member.
struct Delivery {
  EventPtr event;
  uint32_t attempt = 0;  // 1 on first delivery
  absl::Time deadline;   // ack before this, or it is redelivered
};

// ConsumerGroupMember is one member's handle on its group. Destroying it
// leaves the group: the events it holds are offered to the other members at
// once (each counts as a delivery attempt, as a lapsed lease would).
// Poll calls must not overlap; other methods may be called from any thread.
class ConsumerGroupMember {
 public:
  virtual ~ConsumerGroupMember() = default;

  // Leases up to `max` ready events to this member, within its
  // max_in_flight, stopping before their wire encodings pass `max_bytes`
  // (the first is always leased, alone if it must be): what one response
  // carries, so a response never exceeds what the client receives and
  // events not sent are not leased. An event larger than
  // kMaxDeliverableEventBytes (core/ingest.h), which no default gRPC
  // client can receive even alone, is never leased: it is dead-lettered at
  // once, alone, so neither it nor a stream it would break holds up the
  // others. Empty: nothing now; the `wake` given to Join fires when there
  // may be. Errors: kAborted (group deleted), kUnavailable (shutdown,
  // store), kOutOfRange (the group's position fell behind retention).
  virtual absl::StatusOr<std::vector<Delivery>> Poll(
      size_t max, size_t max_bytes = std::numeric_limits<size_t>::max()) = 0;

  // Acks: these events are done. Sequences not leased to this member are
  // ignored and counted (ignored()). Errors: kUnavailable (store).
  virtual absl::Status Ack(absl::Span<const uint64_t> sequences) = 0;
  // Hands events back for redelivery after `delay` (counts as a failed
  // delivery). Same rules as Ack.
  virtual absl::Status Nack(absl::Span<const uint64_t> sequences, absl::Duration delay) = 0;
  // Moves the deadline of events leased to this member to now + extension.
  virtual absl::Status Extend(absl::Span<const uint64_t> sequences,
                              absl::Duration extension) = 0;

  // Acks and nacks that named a sequence not leased to this member.
  virtual uint64_t ignored() const = 0;
};

// ConsumerGroups runs named, durable consumer groups whose members share the
// matching events, each leased to one member at a time until acked
// (at-least-once). Implementations: GroupManager (on any EventLog, state in
// a GroupStore) and NatsConsumerGroups (JetStream durable consumers shared by
// every replica). Thread-safe.
class ConsumerGroups {
 public:
  virtual ~ConsumerGroups() = default;

  // Joins `open.group` (creating it on first use). `wake` is called (never
  // concurrently with itself, must not block or call back in) when a parked
  // member may have deliveries or must see an error; the holder then calls
  // Poll. Errors: kInvalidArgument (bad name, filter, options);
  // kFailedPrecondition (group exists with other filter/options);
  // kUnavailable (shut down, store failure).
  virtual absl::StatusOr<std::unique_ptr<ConsumerGroupMember>> Join(
      const v1::ConsumerOpen& open, std::function<void()> wake) = 0;

  // Every group, by name.
  virtual std::vector<v1::GroupInfo> ListGroups() = 0;

  // Errors: kNotFound; kUnavailable.
  virtual absl::Status DeleteGroup(const std::string& name) = 0;
  // Dead letters with sequence > after, ascending, at most `limit`.
  // Errors: kNotFound; kUnavailable.
  virtual absl::StatusOr<std::vector<v1::DeadLetter>> ListDeadLetters(const std::string& name,
                                                                      uint64_t after,
                                                                      size_t limit) = 0;
  // Redrives the named dead letters (all when empty); returns how many.
  // Errors: kNotFound; kUnavailable.
  virtual absl::StatusOr<uint64_t> Redrive(const std::string& name,
                                           absl::Span<const uint64_t> sequences) = 0;

  // Totals since start, for metrics: leases handed to members, of which
  // redeliveries (attempt > 1), and events moved to dead letters.
  struct Stats {
    uint64_t deliveries = 0, redeliveries = 0, dead_lettered = 0;
  };
  virtual Stats stats() const = 0;

  // Every member's Poll fails with kUnavailable from now on. Idempotent.
  virtual void Shutdown() = 0;
};

// The part of a ConsumerOpen that defines a group (fixed at creation):
// group, filter, max_deliveries (defaulted) and key_ordered.
v1::ConsumerOpen GroupConfig(const v1::ConsumerOpen& open);

// Validates a consumer group name: 1–128 characters of [A-Za-z0-9._-].
absl::Status ValidateGroupName(const std::string& name);

}  // namespace hookfan::broker
