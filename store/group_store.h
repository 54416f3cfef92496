#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace hookfan::broker {

// GroupStore keeps the durable state of consumer groups in the same store as
// the event log, so that after a restart acked events never come back and
// unacked ones do.
//
// Model, per group: `floor` is a sequence such that every matching event at
// or below it is acked or dead, unless it has an attempts record (then it is
// still pending: delivered and not acked, or redriven). Above the floor, the
// store records which events are acked, which are dead, and how often each
// unacked one was delivered. After a restart the group re-reads the log
// after `floor`, skips acked and dead events, and redelivers the rest.
//
// Writes may be made with relaxed fsync (WAL without a sync per commit):
// a power loss can then roll group state back by a few writes, which only
// causes redelivery (at-least-once), never a loss of events.
//
// Thread-safe.
class GroupStore {
 public:
  struct DeadLetterRecord {
    uint64_t sequence = 0;
    uint32_t attempts = 0;
    absl::Time time;
  };

  // Everything needed to bring a group back after a restart.
  struct GroupRecord {
    std::string name;
    std::string config;  // opaque to the store (a serialized proto)
    uint64_t floor = 0;
    // A group started from a snapshot: the last sequence the snapshot
    // covers (0: none). Fixed at creation.
    uint64_t snapshot_through = 0;
    std::vector<uint64_t> acked_above_floor;                    // ascending
    std::vector<std::pair<uint64_t, uint32_t>> attempts;        // (seq, attempts), ascending
    std::vector<uint64_t> dead_above_floor;                     // ascending
    uint64_t dead_letters = 0;                                  // count, all sequences
  };

  // One atomic change to a group's state. Applied in this order:
  // attempts set/cleared, acked added, dead letters added/removed, then the
  // floor raised (records of acked and dead sequences at or below the new
  // floor are no longer needed and may be dropped; dead letters themselves
  // stay listable until redriven or the group is deleted).
  struct Changes {
    std::vector<std::pair<uint64_t, uint32_t>> set_attempts = {};  // upsert
    std::vector<uint64_t> clear_attempts = {};
    std::vector<uint64_t> acked = {};
    std::vector<DeadLetterRecord> dead = {};
    std::vector<uint64_t> redriven = {};  // dead letters removed (attempts set separately)
    std::optional<uint64_t> floor = {};   // never lowers the stored floor

    bool empty() const {
      return set_attempts.empty() && clear_attempts.empty() && acked.empty() && dead.empty() &&
             redriven.empty() && !floor.has_value();
    }
  };

  virtual ~GroupStore() = default;

  // All groups, by name. Errors: kUnavailable on I/O failure, kDataLoss.
  virtual absl::StatusOr<std::vector<GroupRecord>> LoadGroups() = 0;

  // Creates a group. Errors: kAlreadyExists; kUnavailable on I/O failure.
  virtual absl::Status CreateGroup(const std::string& name, const std::string& config,
                                   uint64_t floor, uint64_t snapshot_through = 0) = 0;

  // Deletes a group and all its state. Errors: kNotFound; kUnavailable.
  virtual absl::Status DeleteGroup(const std::string& name) = 0;

  // Applies `changes` atomically. Errors: kNotFound for an unknown group;
  // kUnavailable on I/O failure (nothing applied).
  virtual absl::Status Apply(const std::string& name, const Changes& changes) = 0;

  // Dead letters with sequence > after, ascending, at most `limit`.
  // Errors: kNotFound; kUnavailable.
  virtual absl::StatusOr<std::vector<DeadLetterRecord>> ListDeadLetters(
      const std::string& name, uint64_t after, size_t limit) = 0;
};

}  // namespace hookfan::broker
